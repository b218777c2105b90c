"""Every model of a study over every sentence: the PLLs into the table, the probes the
attacks ask for, the target's PLL of the canaries' alternative secrets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..attacks import ProbeRequest, lira, reduce
from ..common import columns
from ..engine import distributed
from ..engine.cache import ScoreCache
from ..engine.pll import TokenScores
from ..engine.scoring import ModelDir, ScoreSettings, probe_features, score_sentences
from ..settings.study import StudySettings


@dataclass
class Scored:
    """What the models said about the sentences: the table's model columns, the target's
    token scores and the probes' features (complete on rank 0 only)."""

    table: pd.DataFrame
    target_tokens: list[TokenScores]
    features: dict[tuple[str, str], np.ndarray]
    truncated: dict[str, int]
    # (shadow model, "pll_per_token" / "pll" / "logit"): per-sentence values beside the table's
    model_values: dict[tuple[str, str], np.ndarray]
    target_extra_pll: list[float]


def score_models(model_dirs: list[ModelDir], sets: pd.DataFrame,
                 halves: dict[str, tuple[int, frozenset[str]]],
                 requests: list[ProbeRequest], engine: ScoreSettings, cache: ScoreCache,
                 settings: StudySettings, ranks: distributed.Ranks,
                 target_extra: list[str] = ()) -> Scored:
    """Every model over every sentence (this rank's share), one model in memory at a time:
    PLLs into the table (shadow models: their reduced score and IN flag), the probe
    passes ``requests`` asks for, and the target's summed PLL of ``target_extra`` (the
    canaries' alternative secrets)."""
    table = sets.drop(columns="text")
    texts = sets["text"].tolist()
    mine = distributed.shard(len(texts), ranks)
    mine_texts = [texts[i] for i in mine]
    result = Scored(table, [], {}, {}, {}, [])
    for model_dir in model_dirs:
        name = model_dir.name
        # Min-K%++ is the target's alone; the statistics cost a third on a tiny model
        with model_dir.stopwatch.stage("PLL"):
            scores = score_sentences(model_dir, mine_texts, engine, cache,
                                     distribution_stats=name == columns.TARGET)
        if name != columns.TARGET:  # only the sums travel
            scores = [(s.pll, s.n_tokens, s.truncated, lira.token_logit_mean(s.logprobs)) for s in scores]
        scores = distributed.gather(mine, scores, len(texts), ranks)
        if name == columns.TARGET:
            result.target_tokens = scores
            scores = [(s.pll, s.n_tokens, s.truncated, lira.token_logit_mean(s.logprobs)) for s in scores]
        pll, n_tokens, truncated, logit = (np.array(v) for v in zip(*scores))
        result.truncated[name] = int(truncated.sum())
        # the LiRA statistic of this model (--lira-statistic)
        statistic = {"pll": reduce(pll, n_tokens, settings.reduction), "logit": logit}
        if name in halves:
            index, half = halves[name]
            table[columns.shadow_score(index)] = statistic[settings.lira_statistic]
            table[columns.shadow_in(index)] = sets["patient_id"].isin(half).astype(int)
            result.model_values |= {(name, "pll_per_token"): reduce(pll, n_tokens, "mean"), **{
                (name, kind): values for kind, values in statistic.items()}}
        else:
            table[columns.pll(name)], table[columns.n_tokens(name)] = pll, n_tokens
            if name == columns.TARGET and halves:
                table[columns.TARGET_STATISTIC] = statistic[settings.lira_statistic]
        if name == columns.TARGET and target_extra:
            extra = distributed.shard(len(target_extra), ranks)
            with model_dir.stopwatch.stage("canary alternatives"):
                extra_scores = score_sentences(model_dir, [target_extra[i] for i in extra], engine,
                                               cache, distribution_stats=False)
            result.target_extra_pll = distributed.gather(extra, [s.pll for s in extra_scores],
                                                          len(target_extra), ranks)
        for request in (r for r in requests if r.model == name):
            rows = np.flatnonzero(sets["set"].isin(request.sets)) if request.sets else np.arange(len(texts))
            my_rows = np.intersect1d(mine, rows)
            with model_dir.stopwatch.stage(request.probe.name):
                values = probe_features(model_dir, request.probe, [texts[i] for i in my_rows],
                                        engine, cache, settings.seed)
            gathered = distributed.gather(my_rows.tolist(), values, len(texts), ranks)
            if ranks.main:
                width = len(gathered[rows[0]]) if len(rows) else 0
                full = np.full((len(texts), width), np.nan)
                full[rows] = np.stack([gathered[i] for i in rows])
                result.features[name, request.probe.name] = full
        model_dir.release()
    return result
