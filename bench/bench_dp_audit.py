#!/usr/bin/env python
"""The canary audit against targets trained with DP-SGD at known epsilons (Opacus).

    python -m pip install opacus          # for this bench only, not a dependency of the toolkit
    python bench/bench_dp_audit.py [--epsilon 1 4] [--canaries 500] [--work DIR]

Steinke et al.'s one-run bound and the f-DP bound (Mahloujifar, Melis & Chaudhuri 2024)
are *lower* bounds on the epsilon of the training: on a model trained with
(epsilon, delta)-DP they must come out at most epsilon, whatever the attack (the f-DP one
if the training is Gaussian DP, as DP-SGD's is under the usual analysis). This bench
checks that end to end, through the same scripts a user runs, at each ``--epsilon``:

1. ``prepare_data_MIA.py`` on the built-in synthetic corpus, with ``--canaries M
   --canary-repeats 1`` (one copy each: the unit DP protects is one example);
2. a tiny RoBERTa of the demo target's shape and tokenizer, trained with Opacus' DP-SGD
   (Poisson sampling, per-example clipping, each example's loss the mean over its own
   masked tokens, so no example's gradient depends on another's) at (epsilon, delta) on
   the training split's sentences and the included canaries; with ``--control``, also the
   same model trained without DP by the demo's recipe;
3. ``score_MIA.py`` on each (no reference: the canary audit needs only the target) at the
   training's delta; both bounds of every attack, printed against epsilon, in one JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mlm_mia.training import demo
from mlm_mia.cli import prepare
from mlm_mia.training import recipe  # noqa: E402
from mlm_mia.training.train import TinyShape, new_model, train_tiny_mlm, train_tokenizer  # noqa: E402

DELTA = 1e-5


def train_dp(texts: list[str], tokenizer, out_dir: Path, epsilon: float, epochs: int, batch_size: int,
             learning_rate: float, clip: float, seed: int) -> float:
    """Train with DP-SGD at (``epsilon``, DELTA) and save; returns the epsilon Opacus' PRV
    accountant gives the whole training."""
    import torch.nn.functional as F
    from opacus import PrivacyEngine
    from transformers import DataCollatorForLanguageModeling

    torch.manual_seed(seed)
    model = new_model(tokenizer, TinyShape(), seed)
    # The LM head holds its output bias itself as well as through its decoder (the same
    # tensor); Opacus computes per-example gradients layer by layer and has no rule for a
    # module holding a parameter of its own, so the bias is left to the decoder alone while
    # training (the decoder's weight, tied to the word embeddings, gets both layers' shares).
    head = model.lm_head
    del head._parameters["bias"]
    encoded = tokenizer(texts, truncation=True, max_length=128, padding="max_length", return_tensors="pt")
    data = torch.utils.data.TensorDataset(encoded["input_ids"], encoded["attention_mask"])
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    engine = PrivacyEngine(accountant="prv")
    model, optimizer, loader = engine.make_private_with_epsilon(
        module=model, optimizer=torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0),
        data_loader=loader, target_epsilon=epsilon, target_delta=DELTA, epochs=epochs, max_grad_norm=clip)
    model.train()
    for _ in range(epochs):
        for input_ids, attention_mask in loader:
            if not len(input_ids):  # Poisson sampling can draw an empty batch
                continue
            width = int(attention_mask.sum(1).max())
            inputs, labels = masking.torch_mask_tokens(input_ids[:, :width].clone())
            logits = model(input_ids=inputs, attention_mask=attention_mask[:, :width]).logits
            per_token = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # 0 off the masks
            masked = (labels != -100).sum(1).clamp(min=1)
            optimizer.zero_grad()
            (per_token.sum(1) / masked).mean().backward()
            optimizer.step()
    head.bias = head.decoder.bias
    model._module.eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return float(engine.get_epsilon(DELTA))


def audit(model: Path, data: Path, out: Path, alternatives: int) -> dict:
    """score_MIA.py on the target alone at DELTA; both bounds of metrics.json's canary audit
    and their ceilings."""
    subprocess.run([sys.executable, str(ROOT / "score_MIA.py"), "--target", str(model), "--data-dir", str(data),
                    "--out-dir", str(out), "--bootstrap", "0", "--no-plot", "--exposure-alternatives", str(alternatives),
                    "--audit-delta", str(DELTA)], check=True, cwd=ROOT)
    canaries = json.loads((out / "metrics.json").read_text())["canaries"]
    attacks = {attack: {"auc": groups["all"]["auc"], "steinke_epsilon": groups["all"]["epsilon"]["epsilon"],
                        "steinke_right": f"{groups['all']['epsilon']['correct']}/{groups['all']['epsilon']['guesses']}",
                        "fdp_epsilon": groups["all"]["fdp"]["epsilon"], "fdp_mu": groups["all"]["fdp"]["mu"],
                        "fdp_right": f"{groups['all']['fdp']['correct']}/{groups['all']['fdp']['guesses']}"}
               for attack, groups in canaries["by_attack"].items()}
    return {"attacks": attacks, "ceiling": {"steinke_epsilon": canaries["epsilon_ceiling"]["all"],
                                            "fdp_epsilon": canaries["fdp_ceiling"]["all"]["epsilon"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 4.0], help="training epsilons")
    parser.add_argument("--canaries", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="expected (Poisson) batch size")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--clip", type=float, default=1.0, help="per-example gradient norm bound")
    parser.add_argument("--control", action="store_true", help="also audit a target trained without DP")
    parser.add_argument("--exposure-alternatives", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "dp_audit")
    args = parser.parse_args()
    data = args.work / "data"
    if not (data / "manifest.json").exists():
        prepare.main(["--out-dir", str(data), "--n-patients", "20", "--n-sentences", "200",
                      "--canaries", str(args.canaries), "--canary-repeats", "1"])
    texts = demo.target_texts(data)
    tokenizer_dir = args.work / "tokenizer"
    if not tokenizer_dir.exists():
        train_tokenizer(texts, tokenizer_dir)
    from transformers import RobertaTokenizerFast
    tokenizer = RobertaTokenizerFast.from_pretrained(tokenizer_dir)
    report = {"canaries": args.canaries, "delta": DELTA, "training_sentences": len(texts)}

    report["dp"] = []
    for epsilon in args.epsilon:
        start = time.perf_counter()
        target = args.work / f"dp_target_eps{epsilon:g}"
        spent = train_dp(texts, tokenizer, target, epsilon, args.epochs, args.batch_size, args.learning_rate,
                         args.clip, seed=1)
        run = {"target_epsilon": epsilon, "accountant_epsilon": spent, "epochs": args.epochs,
               "train_s": time.perf_counter() - start,
               **audit(target, data, args.work / f"dp_results_eps{epsilon:g}", args.exposure_alternatives)}
        bounds = [b[key] for b in run["attacks"].values() for key in ("steinke_epsilon", "fdp_epsilon")]
        run["every_bound_at_most_epsilon"] = max(bounds) <= spent
        report["dp"].append(run)
    if args.control:
        start = time.perf_counter()
        demo_recipe = recipe.load(recipe.DEMO_RECIPE, "recipe")
        train_tiny_mlm(texts, args.work / "control_target", tokenizer, demo_recipe, seed=demo_recipe.seed)
        report["control_no_dp"] = {"epochs": demo_recipe.epochs, "train_s": time.perf_counter() - start,
                                   **audit(args.work / "control_target", data, args.work / "control_results",
                                           args.exposure_alternatives)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
