#!/usr/bin/env python
"""PLL speed: minicons' MaskedLMScorer against this project's engine, same model, same run.

    python bench/bench_pll.py                          # GPU: roberta-base shape, 2000 sentences
    python bench/bench_pll.py --shape tiny --n 300     # CPU-sized

The model has random weights and a tokenizer trained here on the synthetic corpus (its
vocabulary is padded to roberta-base's 50265 rows, so the LM head costs what it costs in
roberta-base). Sentence lengths look like clinical sentences: log-normal around 30
tokens, with a tail up to 510. minicons scores the sentences up to --minicons-max-tokens
(its memory grows with n^2 x vocabulary); the ratio is taken on that same subset. Prints
sentences/s, the ratio, effective TFLOP/s (the FLOPs of n masked copies of n tokens, LM
head at the masked position), peak memory, and the largest relative differences of
per-sentence PLLs (engine vs minicons, engine in --dtype vs engine in fp32).

Also timed in the same run: the engine through torch.compile (on by default on a GPU;
its first pass, which compiles, is timed apart), and the engine at other token budgets
(--sweep-batch-tokens).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlm_mia.engine import models
from mlm_mia.data import synthetic  # noqa: E402
from mlm_mia.engine.pll import PLLEngine  # noqa: E402
from mlm_mia.data.sentences import clean_sentences  # noqa: E402
from mlm_mia.training.train import TinyShape, new_model, train_tokenizer  # noqa: E402

SHAPES = {"base": TinyShape(hidden=768, layers=12, heads=12, intermediate=3072),
          "tiny": TinyShape(hidden=128, layers=2, heads=4, intermediate=256)}
VOCAB = 50265


def build_model(folder: Path, shape: TinyShape, texts: list[str]) -> None:
    tokenizer = train_tokenizer(texts, folder, vocab_size=8000)
    model = new_model(tokenizer, shape, seed=0)
    model.resize_token_embeddings(VOCAB, mean_resizing=False)
    model.save_pretrained(folder)


def workload(tokenizer, texts: list[str], n: int, seed: int) -> list[str]:
    """``n`` sentences with clinical-looking token lengths, cut from the synthetic text."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(26), 0.55, n), 6, 510).astype(int)
    lengths[rng.choice(n, size=max(1, n // 200), replace=False)] = rng.integers(256, 511, max(1, n // 200))
    stream = tokenizer(" ".join(texts), add_special_tokens=False)["input_ids"]
    sentences = []
    for length in lengths:
        start = int(rng.integers(0, len(stream) - length))
        sentences.append(tokenizer.decode(stream[start:start + length]).strip())
    return sentences


def flops(n_tokens: np.ndarray, shape: TinyShape) -> float:
    """FLOPs of PLL: n masked copies of L = n + 2 tokens, the LM head at one position each."""
    h, f = shape.hidden, shape.intermediate
    length = n_tokens + 2
    per_token = shape.layers * (2 * (4 * h * h + 2 * h * f) + 4 * length * h)  # matmuls + attention
    head = 2 * (h * h + h * VOCAB)
    return float(np.sum(n_tokens * (length * per_token + head)))


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return out, elapsed, peak / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default=None, help="base on GPU, tiny on CPU")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--minicons-max-tokens", type=int, default=128)
    parser.add_argument("--minicons-n", type=int, default=None, help="sentences for minicons "
                        "(default: all of the subset on GPU, 100 on CPU)")
    parser.add_argument("--minicons-batch", type=int, default=8)
    parser.add_argument("--long", type=int, default=8, help="512-token sentences for the memory check")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="also time the engine through torch.compile (auto: on a GPU)")
    parser.add_argument("--sweep-batch-tokens", type=int, nargs="*", default=None,
                        help="other token budgets to time the engine at "
                        "(default on a GPU: 65536 1048576)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    device = models.resolve_device(args.device)
    dtype = models.resolve_dtype(args.dtype, device)
    shape = SHAPES[args.shape or ("base" if device.type == "cuda" else "tiny")]
    batch_tokens = args.batch_tokens or models.default_batch_tokens(device)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = synthetic.write_corpus(scratch / "corpus", n_mimic_patients=300, n_n2c2_patients=10)
        with gzip.open(corpus["noteevents"], "rt") as handle:
            texts = [s for s in clean_sentences(handle.read(), "rules", 20)]
        build_model(scratch / "model", shape, texts)
        model, tokenizer = models.load_masked_lm(scratch / "model", "--model", device, dtype)
        model32, _ = models.load_masked_lm(scratch / "model", "--model", device, torch.float32)
        sentences = workload(tokenizer, texts, args.n, seed=0)
        n_tokens = np.array([len(ids) - 2 for ids in tokenizer(sentences)["input_ids"]])
        limit = models.max_sequence_length(model, tokenizer)

        # what minicons computes (token log-probs); Min-K%++'s statistics timed apart
        engine = PLLEngine(model, tokenizer, limit, batch_tokens=batch_tokens,
                           distribution_stats=False)
        engine.score(sentences[:50])  # warm-up
        scores, t_engine, mem_engine = timed(lambda: engine.score(sentences), device)
        with_stats = PLLEngine(model, tokenizer, limit, batch_tokens=batch_tokens)
        _, t_stats, _ = timed(lambda: with_stats.score(sentences), device)
        engine32 = PLLEngine(model32, tokenizer, limit, batch_tokens=batch_tokens,
                             distribution_stats=False)
        scores32 = engine32.score(sentences) if dtype != torch.float32 else scores
        pll, pll32 = np.array([s.pll for s in scores]), np.array([s.pll for s in scores32])

        compiled = {}
        if args.compile == "on" or (args.compile == "auto" and device.type == "cuda"):
            fast = PLLEngine(model, tokenizer, limit, batch_tokens=batch_tokens,
                             distribution_stats=False, compile=True)
            _, t_compile, _ = timed(lambda: fast.score(sentences), device)  # compiles
            fast_scores, t_fast, mem_fast = timed(lambda: fast.score(sentences), device)
            fast_pll = np.array([s.pll for s in fast_scores])
            compiled = {"sentences_per_s": args.n / t_fast, "tflops": flops(n_tokens, shape) / t_fast / 1e12,
                        "peak_gib": mem_fast, "first_pass_s": t_compile,
                        "max_rel_diff_vs_fp32": float(np.max(np.abs(fast_pll - pll32) / np.abs(pll32)))}
        sweep = {}
        for budget in (args.sweep_batch_tokens if args.sweep_batch_tokens is not None
                       else [65_536, 1_048_576] if device.type == "cuda" else []):
            other = PLLEngine(model, tokenizer, limit, batch_tokens=budget,
                              distribution_stats=False)
            _, t_other, mem_other = timed(lambda: other.score(sentences), device)
            sweep[budget] = {"sentences_per_s": args.n / t_other, "peak_gib": mem_other}

        subset = [i for i in np.flatnonzero(n_tokens <= args.minicons_max_tokens)]
        subset = subset[: args.minicons_n or (len(subset) if device.type == "cuda" else 100)]
        small = [sentences[i] for i in subset]
        from minicons import scorer
        reference = scorer.MaskedLMScorer(model32, str(device), tokenizer=tokenizer)

        def run_minicons():
            out = []
            for start in range(0, len(small), args.minicons_batch):
                out += [sum(s for _, s in t) for t in
                        reference.token_score(small[start:start + args.minicons_batch])]
            return np.array(out)

        mc, t_minicons, mem_minicons = timed(run_minicons, device)
        _, t_engine_small, _ = timed(lambda: engine.score(small), device)
        if compiled:
            _, t_fast_small, _ = timed(lambda: fast.score(small), device)
            compiled["subset_sentences_per_s"] = len(small) / t_fast_small
            compiled["subset_ratio"] = t_minicons / t_fast_small

        long_sentences = [tokenizer.decode(tokenizer(" ".join(texts[i * 40:(i + 1) * 40]),
                                                      add_special_tokens=False)["input_ids"][:510])
                          for i in range(args.long)]
        _, t_long, mem_long = timed(lambda: engine.score(long_sentences), device)

    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "shape": args.shape or ("base" if device.type == "cuda" else "tiny"), "dtype": str(dtype),
        "n_sentences": args.n, "mean_tokens": float(n_tokens.mean()), "max_tokens": int(n_tokens.max()),
        "engine_sentences_per_s": args.n / t_engine,
        "engine_tflops": flops(n_tokens, shape) / t_engine / 1e12,
        "engine_peak_gib": mem_engine,
        "engine_with_min_k_pp_stats_sentences_per_s": args.n / t_stats,
        "subset": {"n": len(small), "max_tokens": args.minicons_max_tokens,
                   "minicons_sentences_per_s": len(small) / t_minicons,
                   "engine_sentences_per_s": len(small) / t_engine_small,
                   "ratio": t_minicons / t_engine_small,
                   "minicons_tflops": flops(n_tokens[subset], shape) / t_minicons / 1e12,
                   "minicons_peak_gib": mem_minicons,
                   "max_rel_diff_engine_vs_minicons": float(np.max(np.abs(pll[subset] - mc) / np.abs(mc)))},
        "max_rel_diff_vs_fp32": float(np.max(np.abs(pll - pll32) / np.abs(pll32))),
        "compiled": compiled or None,
        "batch_tokens": batch_tokens, "batch_tokens_sweep": sweep or None,
        "long_512": {"n": args.long, "seconds": t_long, "peak_gib": mem_long},
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
