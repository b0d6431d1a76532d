"""Benchmark: candidates per minute on this CPU, today's float32 path against what DTYPE="auto" does, in one run.

    .venv/bin/python bench/cpu_speed.py                  # embedded model, 3 built-in passages, notebook defaults
    .venv/bin/python bench/cpu_speed.py --passages 2 --epochs 3

A candidate is one inner loop and its closed-book answers at the notebooks' defaults (10 epochs, LoRA
r32 on every projection, 64-token greedy answers), trained on the passage alone (its step-matched
control), so nothing is sampled and both sides do the same work. "before" is float32 with the answers
generated through peft's LoRA layers (the kit's path until `EvalConfig.merged_answers`); "after" is
DTYPE="auto" with every speed-up on. Where the CPU computes bf16 natively "after" runs in bf16 and the
last line compares the dtypes; where it does not, "after" is float32 too and the line compares float32
before and after. Training FLOP/s counts 4 x parameters x trained tokens (forward 2N, backward 2N
through the frozen weights) against a 1024 x 1024 matmul of the same dtype timed in this run.
"""
from __future__ import annotations

import gc
import time

import torch
from common import parser

from seal_kit.knowledge.data import load_passages
from seal_kit.doctor import examine, machine_line
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.precision import matmul_gflops


def measure(args, dtype: str, merged: bool | None, passages) -> dict:
    model, tokenizer = load_model(args.model, device=args.device, dtype=dtype)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=args.epochs), EvalConfig(merged_answers=merged))
    for p in passages:  # baselines first: not part of a candidate's cost
        task.baseline(p)
    began = time.perf_counter()
    rows = [task.score_passage_only(p, seed=0) for p in passages]
    seconds = time.perf_counter() - began
    n_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    train_s = sum(r["train_seconds"] for r in rows)
    flops = 4 * n_params * sum(r["tokens"] for r in rows) / train_s
    peak = matmul_gflops(model.dtype, model.device, 1024, budget=1.0) * 1e9
    result = {"dtype": str(model.dtype).removeprefix("torch."), "per_minute": 60 * len(rows) / seconds,
              "seconds": seconds, "train_s": train_s, "answer_s": sum(r["eval_seconds"] for r in rows),
              "peak_share": flops / peak, "answers": [a for r in rows for a in r["answers"]],
              "accuracy": sum(r["reward"] for r in rows) / len(rows)}
    del task, model
    gc.collect()
    return result


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=3, help="built-in passages, one candidate each")
    p.add_argument("--epochs", type=int, default=10, help="inner-loop epochs (notebook default: 10)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_line(examine())}", flush=True)
    passages = load_passages("builtin", limit=args.passages)
    before = measure(args, "float32", False, passages)
    after = measure(args, "auto", None, passages)
    for name, r in (("before", before), ("after", after)):
        print(f"{name:6s} {r['dtype']:8s} {r['per_minute']:5.2f} candidates/min ({r['seconds']:.1f} s: train "
              f"{r['train_s']:.1f}, answer {r['answer_s']:.1f}); training at {r['peak_share']:.2f} of the "
              f"{r['dtype']} matmul peak; mean accuracy {r['accuracy']:.3f}", flush=True)
    same = sum(a == b for a, b in zip(before["answers"], after["answers"])) / len(before["answers"])
    compared = (f"{after['dtype']} vs float32" if after["dtype"] != "float32" else "float32 vs float32 before")
    print(f"speedup {after['per_minute'] / before['per_minute']:.2f}x ({compared}); training at "
          f"{after['peak_share']:.2f} of the {after['dtype']} matmul peak; answers equal on {same:.0%} of "
          f"{len(before['answers'])} questions")


if __name__ == "__main__":
    main()
