"""Benchmark: does bf16 change what a run finds? Accuracy in bfloat16 minus float32, paired passage by passage.

    .venv/bin/python bench/dtype_ab.py                   # 16 seal-eval passages (GPT-4.1's edits) + 16 built-in (own)
    .venv/bin/python bench/dtype_ab.py --passages 4 --epochs 3 --force   # a small check, even without bf16 units

Two arms at the notebooks' default inner loop: the paper's passages with GPT-4.1's published self-edits
(first sample), and built-in passages with the embedded model's own self-edits (sampled once, in float32,
seed 0, so both dtypes train on the same text and only the inner loop and the answers differ). Every
candidate is trained and answered once in each dtype; the per-passage accuracy differences give the
mean bf16 - float32 with its 95% bootstrap interval over passages. The check the kit holds bf16 to:
the interval contains 0 and the mean lies within 2 points. Without bf16 units (`seal-kit doctor`) bf16
is emulated, ~100x slower: the script refuses unless --force.
"""
from __future__ import annotations

import gc
import sys
import time

from common import parser

from seal_kit.knowledge.data import load_passages
from seal_kit.doctor import examine, machine_line
from seal_kit.knowledge.task import KnowledgeTask
from seal_kit.models import load_model
from seal_kit.precision import native_bf16
from seal_kit.knowledge.reference import load_reference_self_edits
from seal_kit.self_edit import SamplingConfig
from seal_kit.strategies import generate_self_edits
from seal_kit.stats import mean_interval, paired_gain


def arms(args) -> dict[str, list[tuple]]:
    """(passage, self-edit) pairs per arm: the same text for both dtypes."""
    paper = load_passages("seal-eval", limit=args.passages)
    gpt = load_reference_self_edits("gpt4_1", paper).query("sample == 0").set_index("passage_id")["self_edit"]
    own = load_passages("builtin", limit=args.passages)
    model, tokenizer = load_model(args.model, device=args.device, dtype="float32")
    edits = generate_self_edits(model, tokenizer, own, "implications", SamplingConfig(k=1, seed=0), progress=False)
    del model
    gc.collect()
    return {"seal-eval + GPT-4.1 edits": [(p, gpt[p.id]) for p in paper],
            "built-in + own edits": [(p, e) for p, e in zip(own, edits["self_edit"])]}


def accuracies(args, dtype: str, pairs: list[tuple]) -> tuple[list[float], float]:
    model, tokenizer = load_model(args.model, device=args.device, dtype=dtype)
    task = KnowledgeTask(model, tokenizer)
    if args.epochs:
        task.inner.config.epochs = args.epochs
    began = time.perf_counter()
    rewards = [task.score(p, e)["reward"] for p, e in pairs]
    del task, model
    gc.collect()
    return rewards, time.perf_counter() - began


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=16, help="passages per arm (16 each)")
    p.add_argument("--epochs", type=int, default=None, help="inner-loop epochs (default: the notebooks', 10)")
    p.add_argument("--force", action="store_true", help="run bf16 even where the CPU emulates it")
    args = p.parse_args()
    print(f"machine: {machine_line(examine())}", flush=True)
    native, why = native_bf16(args.device or "cpu")
    if not native and not args.force:
        print(f"not run: {why}; bf16 here would measure emulation, not the dtype (--force to run anyway)")
        sys.exit(2)
    pooled_bf16, pooled_fp32 = [], []
    for arm, pairs in arms(args).items():
        fp32, fp32_s = accuracies(args, "float32", pairs)
        bf16, bf16_s = accuracies(args, "bfloat16", pairs)
        pooled_fp32 += fp32
        pooled_bf16 += bf16
        diff = paired_gain(bf16, fp32)
        print(f"{arm}: float32 {100 * mean_interval(fp32)[0]:.1f} ({fp32_s:.0f} s), bfloat16 "
              f"{100 * mean_interval(bf16)[0]:.1f} ({bf16_s:.0f} s); bf16 - float32 {100 * diff['gain']:+.1f} "
              f"[{100 * diff['ci_low']:+.1f}, {100 * diff['ci_high']:+.1f}] points, n = {diff['n_passages']}", flush=True)
    diff = paired_gain(pooled_bf16, pooled_fp32)
    holds = diff["ci_low"] <= 0 <= diff["ci_high"] and abs(diff["gain"]) <= 0.02
    print(f"bf16 - float32 over both arms: {100 * diff['gain']:+.1f} [{100 * diff['ci_low']:+.1f}, "
          f"{100 * diff['ci_high']:+.1f}] points, n = {diff['n_passages']} passages: "
          f"{'holds' if holds else 'FAILS'} (interval contains 0, |mean| <= 2 points)")


if __name__ == "__main__":
    main()
