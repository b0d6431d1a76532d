"""Benchmark: end-to-end seconds per ReST-EM candidate (sample the self-edit, train, answer, score),
one candidate at a time vs the batched inner loop, each a real one-round RestEM run.

    .venv/bin/python bench/rest_em.py                         # embedded model, CPU, 2 passages x K=3
    .venv/bin/python bench/rest_em.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda --k 5 --passages 4

Each side is `RestEM(..., RestEMConfig(rounds=0), executor=InProcess(batch=B))` in a fresh
temporary run directory: it samples K edits per training passage and one per held-out passage,
scores every one, and writes candidates.jsonl. Seconds per candidate = the run's wall time over the
candidates it scored. For scale: SEAL's reference code took 30-45 s per self-edit evaluation (the
paper's setting, a 7B model on H100s).
"""
from __future__ import annotations

import tempfile
import time

from common import Peak, parser, setup

from seal_kit.knowledge.data import load_passages
from seal_kit.executors import InProcess
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import KnowledgeTask
from seal_kit.rest_em import RestEM, RestEMConfig
from seal_kit.runs import start_run
from seal_kit.self_edit import SamplingConfig


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=2, help="training passages (built-in); 1 held-out beside them")
    p.add_argument("--k", type=int, default=3, help="self-edits per training passage")
    p.add_argument("--epochs", type=int, default=10, help="inner-loop epochs (paper: 10)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="self-edit length")
    args = p.parse_args()
    model, tokenizer = setup(args)
    passages = load_passages("builtin", limit=args.passages + 1)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=args.epochs))
    config = RestEMConfig(rounds=0, sampling=SamplingConfig(k=args.k, max_new_tokens=args.max_new_tokens))
    n = args.passages * args.k + 1
    print(f"{n} candidates per run ({args.passages} passages x K={args.k} + 1 held-out), {args.epochs} epochs")
    seconds, rewards = {}, {}
    for name, batch in (("one at a time", 1), (f"batched ({args.k})", args.k)):
        task.clear_baselines()  # each side computes its own
        with tempfile.TemporaryDirectory() as tmp, Peak(model.device) as peak:
            run = start_run("bench", tmp, {"batch": batch})
            loop = RestEM(task, passages[:-1], passages[-1:], config, run, progress=False,
                          executor=InProcess(batch=batch))
            began = time.perf_counter()
            loop.run()
            seconds[name] = (time.perf_counter() - began) / n
            table = loop.candidates()
            rewards[name] = list(table.sort_values(["split", "context_id", "sample"])["reward"].round(3))
        loop.generator.model.delete_adapter("generator")  # the next RestEM adds its own
        print(f"  {name}: {seconds[name]:.2f} s per candidate ({60 / seconds[name]:.2f} candidates/min), "
              f"mean reward {sum(rewards[name]) / n:.3f}, working memory {peak.extra:.0f} MiB", flush=True)
    one, batched = seconds["one at a time"], seconds[f"batched ({args.k})"]
    print(f"same rewards on both sides: {rewards['one at a time'] == rewards[f'batched ({args.k})']}")
    print(f"seconds per ReST-EM candidate, one at a time / batched: {one / batched:.2f}x "
          f"(for scale only: the reference code took 30-45 s per self-edit evaluation with a 7B model on H100s)")


if __name__ == "__main__":
    main()
