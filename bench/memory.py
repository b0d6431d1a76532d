"""Benchmark: no memory growth per candidate over a long run. Scores 50 candidates in one process
and prints resident memory (or CUDA allocated memory) after 5 and after 50, and the growth per
candidate between them.

    .venv/bin/python bench/memory.py                       # embedded model, CPU, one candidate at a time
    .venv/bin/python bench/memory.py --batch 5             # the batched inner loop, 5 candidates together
    .venv/bin/python bench/memory.py --device cuda --model Qwen/Qwen2.5-0.5B-Instruct

Candidates are the built-in passages with a fixed self-edit (the passage's own sentences) under
different seeds: what is measured is the inner loop's and the evaluation's bookkeeping, so one
inner-loop epoch is enough.
"""
from __future__ import annotations

import gc

import torch
from common import parser, rss_mib, setup

from seal_kit.knowledge.data import load_passages
from seal_kit.executors import InProcess
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import KnowledgeTask


def used_mib(device: torch.device) -> float:
    gc.collect()
    return torch.cuda.memory_allocated() / 2 ** 20 if device.type == "cuda" else rss_mib()


def main():
    p = parser(__doc__)
    p.add_argument("--candidates", type=int, default=50)
    p.add_argument("--early", type=int, default=5, help="the first reading, after this many candidates")
    p.add_argument("--batch", type=int, default=1, help="candidates whose inner loops train together")
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    model, tokenizer = setup(args)
    passages = load_passages("builtin")
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=args.epochs))
    items = [(passages[n % len(passages)], passages[n % len(passages)].context.replace(". ", ".\n"), n)
             for n in range(args.candidates)]
    executor = InProcess(batch=args.batch)
    readings = {}
    for n, _ in executor.score(task, items):
        if n + 1 in (args.early, args.candidates):
            readings[n + 1] = used_mib(model.device)
            print(f"  after {n + 1} candidates: {readings[n + 1]:.0f} MiB", flush=True)
    early, late = readings[args.early], readings[args.candidates]
    kind = "CUDA allocated" if model.device.type == "cuda" else "RSS"
    print(f"{kind} after {args.candidates} / after {args.early} candidates: {late / early:.3f}x; "
          f"growth {(late - early) / (args.candidates - args.early):.2f} MiB per candidate (batch {args.batch})")


if __name__ == "__main__":
    main()
