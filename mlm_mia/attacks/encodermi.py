"""EncoderMI (Liu et al. 2021, "EncoderMI: membership inference against pre-trained
encoders in contrastive learning") for a text encoder: an encoder embeds augmented views
of its training inputs more alike than views of other inputs.

Each sentence gets ``n`` seeded views by random masking (each non-special token replaced
by the mask token with probability 0.15), embedded as the L2-normalised mean of the last
hidden layer; its feature is the sorted vector of the ``n(n-1)/2`` pairwise cosine
similarities.

- ``encodermi_t``: the mean similarity, thresholded (no shadow model needed);
- ``encodermi_v``: a vector classifier on the sorted similarities, trained on a shadow
  model's known members (IN) and non-members (OUT), applied to the target's features.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common import columns
from ..common.progress import Progress
from ..data.sentences import text_hash
from ..data.sets import SHADOW_SETS
from .base import Inputs, Probe

N_VIEWS = 10
MASK_PROBABILITY = 0.15


def masked_views(ids: Sequence[int], maskable: np.ndarray, mask_id: int, n_views: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``[n_views, L]`` copies of ``ids``, each maskable token masked with probability 0.15."""
    views = np.tile(np.asarray(ids, dtype=np.int64), (n_views, 1))
    masked = (rng.random(views.shape) < MASK_PROBABILITY) & maskable
    views[masked] = mask_id
    return views


def similarity_features(model, tokenizer, texts: Sequence[str], max_length: int,
                        seed: int = 0, batch_tokens: int = 16384, progress: Progress | None = None,
                        n_views: int = N_VIEWS) -> np.ndarray:
    """``[len(texts), n(n-1)/2]`` sorted pairwise cosine similarities of each text's views.

    A text's views depend only on ``seed`` and the text, not on its batch or position.
    """
    import torch

    from ..engine.pll import equal_length_batches, last_hidden_state, unscored_ids

    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    specials = np.array(unscored_ids(tokenizer))
    device = next(model.parameters()).device
    pairs = torch.triu_indices(n_views, n_views, offset=1)
    features = np.empty((len(texts), pairs.size(1)))
    lengths = [len(ids) for ids in encoded]
    per_token = len(texts) / max(sum(lengths), 1)  # progress in step with the work: tokens
    with torch.inference_mode():
        for batch in equal_length_batches(lengths, batch_tokens, n_views):
            if progress is not None:
                progress.update(per_token * lengths[batch[0]] * len(batch))
            views = np.concatenate([
                masked_views(encoded[i], ~np.isin(encoded[i], specials), tokenizer.mask_token_id,
                             n_views, np.random.default_rng([seed, text_hash(texts[i])]))
                for i in batch])
            hidden = last_hidden_state(model, torch.from_numpy(views).to(device))
            embedded = torch.nn.functional.normalize(hidden.float().mean(1), dim=-1)
            embedded = embedded.view(len(batch), n_views, -1)
            similarity = embedded @ embedded.transpose(1, 2)
            values = similarity[:, pairs[0], pairs[1]].sort(dim=1).values
            features[batch] = values.double().cpu().numpy()
    return features


def vector_classifier_scores(shadow_features: np.ndarray, shadow_in: np.ndarray,
                             target_features: np.ndarray) -> np.ndarray:
    """EncoderMI-V: a logistic-regression classifier of IN vs OUT trained on a shadow
    model's features, applied to the target's; returns its log-odds of "member".

    The 45 sorted similarities are strongly correlated, so the regularisation is chosen
    by 5-fold cross-validated AUC on the shadow's sentences (unregularised, it overfits).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(shadow_in, dtype=int)
    if np.unique(labels).size < 2:
        raise ValueError("the shadow model's sentences must include IN and OUT ones")
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                          {"logisticregression__C": np.logspace(-4, 2, 7)}, cv=5, scoring="roc_auc")
    search.fit(shadow_features, labels)
    return search.decision_function(target_features)


# "scored=pll": the tokens it masks are those the PLL scores ([UNK] too)
PROBE = Probe("encodermi", f"views={N_VIEWS}|mask={MASK_PROBABILITY}|scored=pll", similarity_features)


def encodermi_t(inputs: Inputs) -> np.ndarray:
    """EncoderMI-T: the mean similarity of the target's views."""
    return inputs.features["target", PROBE.name].mean(1)


def encodermi_v(inputs: Inputs) -> np.ndarray:
    """EncoderMI-V: the classifier trained on shadow model 0's IN and OUT sentences."""
    known = np.flatnonzero(inputs.in_set(*SHADOW_SETS))
    return vector_classifier_scores(inputs.features["shadow_0", PROBE.name][known],
                                    inputs.table[columns.shadow_in(0)].to_numpy()[known],
                                    inputs.features["target", PROBE.name])
