"""Benchmark: which hand-fixed test-time training config solves small ARC tasks with a small model on a CPU.

    .venv/bin/python bench/arc_oracle_small.py                              # small-train, in context + two oracles
    .venv/bin/python bench/arc_oracle_small.py --tasks 25ff71a9,49d1d64f --oracles 1e-3:4

Calibrates notebook 04's oracle (`ORACLE_LR`, `ORACLE_EPOCHS`) on the small subset's *training* tasks, so
the evaluation tasks it is then reported on play no part in choosing it. For each task: in-context answering
(the base model) and test-time training with every tool on and output-only loss at each `lr:epochs`, under
notebook 04's defaults otherwise (4 voted views, 12 augmented tasks). Prints per task the reward, optimiser
steps and seconds, then per method the tasks solved with a 95% bootstrap interval over tasks.
"""
from __future__ import annotations

import dataclasses
import time

from common import parser, setup

from seal_kit.arc.data import select_tasks
from seal_kit.arc.few_shot import ORACLE, ArcConfig, ArcFewShot, inner_config
from seal_kit.stats import bootstrap_interval


def main():
    p = parser(__doc__)
    p.add_argument("--source", default="small-train", help="ARC tasks, as notebook 04's TASKS (default: small-train)")
    p.add_argument("--tasks", default=None, help="comma-separated task ids of --source (default: all of them)")
    p.add_argument("--oracles", default="1e-4:2,1e-3:4",
                   help="lr:epochs of each oracle (default: 1e-4:2 (ORACLE), 1e-3:4)")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--max-examples", type=int, default=12)
    args = p.parse_args()
    tasks = select_tasks(args.source)
    if args.tasks:
        wanted = args.tasks.split(",")
        tasks = [t for t in tasks if t.id in wanted]
    oracles = {}
    for spec in args.oracles.split(","):
        lr, _, epochs = spec.partition(":")
        oracles[f"oracle lr {lr} x {epochs}"] = dataclasses.replace(ORACLE, learning_rate=float(lr),
                                                                    num_train_epochs=int(epochs))
    model, tokenizer = setup(args)
    setting = ArcFewShot(model, tokenizer, inner_config(), ArcConfig(views=args.views, max_examples=args.max_examples))
    rewards = {"icl": [], **{name: [] for name in oracles}}
    for task in tasks:
        began = time.perf_counter()
        rewards["icl"].append(setting.baseline(task)["reward"])
        print(f"{task.id} icl: {rewards['icl'][-1]:.0f} ({time.perf_counter() - began:.0f} s)", flush=True)
        for name, config in oracles.items():
            began = time.perf_counter()
            scored = setting.score_config(task, config, seed=0)
            rewards[name].append(scored["reward"])
            print(f"{task.id} {name}: {scored['reward']:.0f}, {scored.get('status')}, {scored.get('steps')} steps "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"\n{len(tasks)} tasks of {args.source}")
    for name, values in rewards.items():
        low, high = bootstrap_interval(values)
        print(f"{name}: {sum(values):.0f}/{len(values)} solved, 95% interval over tasks [{low:.0%}, {high:.0%}]")


if __name__ == "__main__":
    main()
