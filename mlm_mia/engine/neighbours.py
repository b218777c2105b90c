"""Neighbours of a sentence for the neighbourhood attack (Mattern et al. 2023, "Membership
Inference Attacks against Language Models via Neighbourhood Comparison"), made by a local
masked LM, and their PLLs under the target.

The generation follows Mattern et al. as MIMIR's BERT neighbour model implements it (its
``deterministic`` strategy with in-place swaps, the default):

- each scored token of the sentence in turn (never ``<s>``/``</s>``) is predicted from the
  whole sentence with dropout (p = 0.7) on that token's input embedding, not a mask: the
  model still half sees the original token, so its proposals stay close to it;
- the ``PROPOSALS`` most probable tokens there other than the original are proposals, each
  weighted by its probability renormalised without the original, p(c) / (1 - p(orig));
- the N proposals of highest weight over all positions make the N neighbours, each the
  sentence with that one token replaced *in the original text* (at the token's character
  offsets), so the rest of the text is exactly the sentence's.

Where this differs from MIMIR, and why:

- the dropout is applied to the token's word embedding, and the model adds its position
  embeddings as usual; MIMIR drops out the embedding layer's output and feeds it back as
  ``inputs_embeds``, which adds the positions (and the layer norm) a second time;
- 1 - p(orig) is the probability mass of the other tokens, computed in log space (exact
  where MIMIR substitutes 0.1 for p(orig) = 1);
- special tokens are neither replaced (MIMIR's loop reaches the closing ``[SEP]``) nor
  proposed, nor are the rows of an embedding matrix padded past the tokenizer's vocabulary,
  and MIMIR's top 6 with the original dropped is the top 5 without it;
- a proposal whose swap leaves the text unchanged, repeats another neighbour, only deletes
  a word (a bare space token) or cuts a multi-byte character is passed over for the next;
- the dropout masks come from a generator seeded by (``--seed``, sentence), so a
  sentence's neighbours depend on neither its batch nor the number of processes.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from ..common.progress import Progress
from ..data.sentences import text_hash
from . import distributed
from .cache import TextCache
from .pll import MAX_COPIES, equal_length_batches, last_hidden_state, lm_head_of, unscored_ids
from .scoring import ModelDir, ScoreSettings, _compute_missing, score_sentences

log = logging.getLogger(__name__)

DROPOUT = 0.7
PROPOSALS = 5
# what defines the generation (recorded in settings.json; part of the cache key): raise the
# version when the neighbours a model makes change
GENERATION = {"method": "token swap, dropout on its embedding (Mattern et al. 2023; MIMIR's BERT "
                        "neighbours, deterministic, in place)",
              "dropout": DROPOUT, "proposals_per_token": PROPOSALS, "version": 1}
FOLDER = "neighbours"  # in the data folder: the neighbours are note text
FILE = "neighbours.sqlite"


def cache_for(data_dir, no_cache: bool) -> TextCache:
    """The neighbour texts' cache, in the data folder beside the sentences they are made
    from (never beside the results: neighbours are note text)."""
    return TextCache(None if no_cache else data_dir / FOLDER / FILE, f"--data-dir {data_dir}",
                     f"delete {FOLDER}/{FILE} there, or run with --no-cache")


def _swap(text: str, ids: list[int], offsets: list[tuple[int, int]], scored: np.ndarray,
          position: int, candidate: int, tokenizer) -> str | None:
    """``text`` with its token at ``position`` replaced by ``candidate`` in place, or None
    where that is no clean single-token swap."""
    start, end = offsets[position]
    before = offsets[position - 1][1]
    after = offsets[position + 1][0] if position + 1 < len(ids) and scored[position + 1] else end
    if before > start or after < end:  # shares a character with a neighbouring token
        return None
    # the candidate as it reads after the original token: its own leading space, if any
    alone = tokenizer.decode([ids[position]])
    joined = tokenizer.decode([ids[position], candidate])
    if "\ufffd" in joined or not joined.startswith(alone):
        return None
    piece = joined[len(alone):]
    if not piece.strip():
        return None
    if scored[position - 1]:  # the space before the token is the candidate's to give
        start = before
    else:
        piece = piece.lstrip()
    return text[:start] + piece + text[end:]


def make_neighbours(model, tokenizer, texts: Sequence[str], n: int, seed: int, max_length: int,
                    batch_tokens: int = 16384, progress: Progress | None = None) -> list[list[str]]:
    """Up to ``n`` neighbours of each text (fewer where it has fewer clean swaps), each the
    text with one token replaced, best first; ``progress`` advances by ``len(texts)`` in
    all, in step with the copies run."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)
    specials = np.array(unscored_ids(tokenizer))
    never = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    device = next(model.parameters()).device
    embedding = model.get_input_embeddings()
    head = lm_head_of(model)
    proposals: list[list[tuple[float, int, int]]] = [[] for _ in texts]  # (log weight, position, token)
    # texts per copy (a copy per scored token), so that the time left counts long texts' cost
    scale = len(texts) / max(sum(int((~np.isin(ids, specials)).sum()) for ids in encoded["input_ids"]), 1)
    with torch.inference_mode():
        lengths = [len(ids) for ids in encoded["input_ids"]]
        for group in equal_length_batches(lengths, np.iinfo(np.int64).max):
            ids = torch.tensor([encoded["input_ids"][i] for i in group], device=device)
            sentence, position = np.nonzero(~np.isin(ids.cpu().numpy(), specials))
            # each text's dropout masks from its own generator (its copies are contiguous)
            counts = np.bincount(sentence, minlength=len(group))
            keep = np.concatenate([
                (np.random.default_rng([seed, text_hash(texts[index])]).random(
                    (count, embedding.embedding_dim)) >= DROPOUT) / (1 - DROPOUT)
                for index, count in zip(group, counts)]).astype(np.float32)
            rows = max(1, min(batch_tokens // ids.size(1), MAX_COPIES))
            for start in range(0, sentence.size, rows):
                at_sentence = torch.from_numpy(sentence[start:start + rows]).to(device)
                at = torch.from_numpy(position[start:start + rows]).to(device)
                copies = torch.arange(at.numel(), device=device)
                embeds = embedding(ids[at_sentence])
                embeds[copies, at] *= torch.from_numpy(keep[start:start + rows]).to(device, embeds.dtype)
                if head is not None:
                    logits = head(last_hidden_state(model, inputs_embeds=embeds)[copies, at])
                else:
                    logits = model(inputs_embeds=embeds).logits[copies, at]
                logits = logits.float()
                original = ids[at_sentence, at]
                logits[copies, original] = -torch.inf
                rest = torch.logsumexp(logits, -1, keepdim=True)  # log (1 - p(original))
                logits[:, never.to(device)] = -torch.inf
                logits[:, len(tokenizer):] = -torch.inf  # rows past the vocabulary (padded embeddings)
                weight, token = torch.topk(logits - rest, PROPOSALS, dim=-1)
                for s, p, w, t in zip(sentence[start:start + rows], position[start:start + rows],
                                      weight.cpu().numpy(), token.cpu().numpy()):
                    proposals[group[s]] += [(float(a), int(p), int(b)) for a, b in zip(w, t) if np.isfinite(a)]
                if progress is not None:
                    progress.update(at.numel() * scale)
    result = []
    for index, text in enumerate(texts):
        ids, offsets = encoded["input_ids"][index], encoded["offset_mapping"][index]
        scored = ~np.isin(ids, specials)
        made: list[str] = []
        # best weight first; ties in position, then proposal order
        for _, position, token in sorted(proposals[index], key=lambda x: (-x[0], x[1])):
            swapped = _swap(text, ids, offsets, scored, position, token, tokenizer)
            if swapped is not None and swapped != text and swapped not in made:
                made.append(swapped)
                if len(made) == n:
                    break
        result.append(made)
    return result


def neighbour_texts(model_dir: ModelDir, texts: Sequence[str], n: int, seed: int,
                    settings: ScoreSettings, cache: TextCache) -> list[list[str]]:
    """Each text's neighbours made by ``model_dir``'s masked LM, cached by (model files,
    dtype, seed, n, generation, text)."""
    namespace = "|".join(["neighbours", str(GENERATION["version"]), model_dir.fingerprint,
                          str(model_dir.dtype), str(seed), str(n), str(DROPOUT), str(PROPOSALS)])
    keys = cache.keys(namespace, texts)
    found = cache.get_texts(keys)
    todo = [i for i, key in enumerate(keys) if key not in found]
    log.info("%s: neighbours of %d sentences to make, %d from the cache", model_dir.name,
             len(todo), len(keys) - len(todo))
    if todo:
        model, max_length = model_dir.loaded
        with Progress(f"neighbours {model_dir.name}", len(todo), "sentences", enabled=settings.progress) as bar:
            _compute_missing(keys, todo, found, lambda block: make_neighbours(
                model, model_dir.tokenizer, [texts[i] for i in block], n, seed, max_length,
                settings.batch_tokens, bar), cache.put_texts)
    model_dir.release()
    return [found[key] for key in keys]


def neighbour_plls(generator: ModelDir, target: ModelDir, texts: Sequence[str], n: int, seed: int,
                   settings: ScoreSettings, score_cache, text_cache: TextCache,
                   ranks: distributed.Ranks) -> tuple[np.ndarray, np.ndarray]:
    """``[len(texts), n]`` summed PLLs and scored-token counts of each text's neighbours
    under the target (NaN past the neighbours a text has), this rank's share scored and
    gathered (complete on rank 0 only)."""
    mine = distributed.shard(len(texts), ranks)
    neighbours = neighbour_texts(generator, [texts[i] for i in mine], n, seed, settings, text_cache)
    flat = [t for made in neighbours for t in made]
    scores = iter(score_sentences(target, flat, settings, score_cache, distribution_stats=False))
    target.release()
    # zip with the neighbours first: it stops before taking a score that is not theirs
    values = [[(s.pll, s.n_tokens) for _, s in zip(made, scores)] for made in neighbours]
    gathered = distributed.gather(mine, values, len(texts), ranks)
    pll, n_tokens = np.full((len(texts), n), np.nan), np.full((len(texts), n), np.nan)
    if ranks.main:
        for row, values in enumerate(gathered):
            for column, (value, count) in enumerate(values):
                pll[row, column], n_tokens[row, column] = value, count
    return pll, n_tokens


def record(generator: ModelDir, n: int, pll: np.ndarray) -> dict:
    """settings.json's account of the neighbours: how many, which model made them (its files'
    digest defines the attack, its folder says where it was), how, and how many sentences
    had fewer."""
    found = (~np.isnan(pll)).sum(1)
    return {"n": n, "model": generator.fingerprint, "model_dir": str(generator.path),
            "generation": GENERATION, "made": int(found.sum()), "sentences_with_fewer": int((found < n).sum()),
            "sentences_without": int((found == 0).sum())}
