"""Benchmark: candidates per minute, the batched multi-candidate inner loop vs one at a time.

    .venv/bin/python bench/batched.py                          # embedded model, CPU, 2 passages x K=4
    .venv/bin/python bench/batched.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda --k 8

Both sides score the same self-edits (sampled once from the model) under the same seeds with the
same InnerLoop: train a fresh LoRA adapter per candidate, answer the passage's questions closed
book, reward = accuracy. One at a time is `task.score_many(items)`; batched is
`task.score_many(items, BatchedLoRA(inner))`, which trains all K candidates of a passage in one
packed forward/backward per step and answers with all K adapters in one generation. It also checks
that both give the same rewards and losses.
"""
from __future__ import annotations

import time

from common import Peak, parser, setup

from seal_kit.batched import BatchedLoRA
from seal_kit.knowledge.data import load_passages
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import KnowledgeTask
from seal_kit.self_edit import SamplingConfig
from seal_kit.strategies import generate_self_edits


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=2, help="built-in passages")
    p.add_argument("--k", type=int, default=4, help="self-edits per passage, trained together")
    p.add_argument("--epochs", type=int, default=10, help="inner-loop epochs (paper: 10)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="self-edit length")
    args = p.parse_args()
    model, tokenizer = setup(args)
    passages = load_passages("builtin", limit=args.passages)
    edits = generate_self_edits(model, tokenizer, passages, "implications",
                                SamplingConfig(k=args.k, max_new_tokens=args.max_new_tokens), progress=False)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=args.epochs))
    by_id = {q.id: q for q in passages}
    items = [(by_id[row.passage_id], row.self_edit, 0) for row in edits.itertuples()]
    for q in passages:
        task.baseline(q)  # cached for both sides
    print(f"{len(items)} candidates ({args.passages} passages x K={args.k}), {args.epochs} epochs, "
          f"{sum(len(task.inner_job(c, e).examples) for c, e, _ in items) / len(items):.1f} documents per candidate")

    timings, peaks, results = {}, {}, {}
    for name, lora in (("one at a time", None), ("batched", BatchedLoRA(task.inner))):
        rows = []
        with Peak(model.device) as peak:
            began = time.perf_counter()
            for q in passages:  # the batched side trains one passage's K candidates together
                rows += task.score_many([i for i in items if i[0].id == q.id], lora)
            timings[name] = time.perf_counter() - began
        peaks[name], results[name] = peak.extra, rows
        n = len(rows)
        print(f"  {name}: {timings[name]:.1f} s, {60 * n / timings[name]:.2f} candidates/min "
              f"(train {sum(r['train_seconds'] for r in rows) / n:.2f} s + answer "
              f"{sum(r['eval_seconds'] for r in rows) / n:.2f} s per candidate), working memory {peaks[name]:.0f} MiB "
              f"(peak {'RSS' if model.device.type == 'cpu' else 'CUDA allocated'} above the model's)", flush=True)
    one, many = results["one at a time"], results["batched"]
    same = sum(a["reward"] == b["reward"] for a, b in zip(one, many))
    loss_gap = max(abs(x - y) for a, b in zip(one, many) for x, y in zip(a["losses"], b["losses"]))
    print(f"rewards equal for {same}/{len(one)} candidates; largest loss difference {loss_gap:.2e}")
    print(f"candidates per minute, batched / one at a time: {timings['one at a time'] / timings['batched']:.2f}x; "
          f"working memory per candidate in flight: batched {peaks['batched'] / args.k:.0f} MiB, "
          f"one at a time {peaks['one at a time']:.0f} MiB")


if __name__ == "__main__":
    main()
