"""Benchmark: how often the model writes a valid ARC self-edit config, free vs constrained decoding.

    .venv/bin/python bench/arc_valid_configs.py                   # embedded model, the SEAL subset's 12 training tasks, K=4
    .venv/bin/python bench/arc_valid_configs.py --tasks seal-eval --k 8 --model meta-llama/Llama-3.2-1B-Instruct

Both sides sample K configs per task from the same prompts under the same seed, temperature and token
budget (notebook 04's defaults): free decoding as the model writes, and constrained decoding under the
config's JSON schema (`SamplingConfig.constrained`, lm-format-enforcer on hf). A config is valid when
`parse_self_edit` accepts it (JSON, the seven keys, values in range). Prints the valid share with a 95%
bootstrap interval over tasks, the reasons for failure, and the seconds each side took.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
from common import parser, setup

from seal_kit.arc.data import select_tasks
from seal_kit.arc.edit import OK, parse_self_edit
from seal_kit.arc.few_shot import ArcFewShot
from seal_kit.self_edit import SamplingConfig, sample_self_edits
from seal_kit.stats import bootstrap_interval


def main():
    p = parser(__doc__)
    p.add_argument("--tasks", default="seal-train", help="ARC tasks, as notebook 04's TASKS (default: seal-train)")
    p.add_argument("--k", type=int, default=4, help="configs per task")
    p.add_argument("--max-new-tokens", type=int, default=160, help="notebook 04's MAX_NEW_TOKENS")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    model, tokenizer = setup(args)
    setting = ArcFewShot(model, tokenizer)
    tasks = select_tasks(args.tasks)
    rows = [{"task": t.id, "prompt": setting.self_edit_prompt(t)} for t in tasks for _ in range(args.k)]
    print(f"{len(tasks)} tasks x K={args.k}, temperature {args.temperature}, up to {args.max_new_tokens} tokens, seed {args.seed}")
    for constrained in (False, True):
        config = SamplingConfig(k=args.k, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                seed=args.seed, constrained=constrained)
        began = time.perf_counter()
        table = sample_self_edits(model, tokenizer, rows, config, progress=False,
                                  schema=setting.self_edit_schema if constrained else None)
        seconds = time.perf_counter() - began
        parsed = [parse_self_edit(text) for text in table.self_edit]
        table["valid"] = [e.status == OK for e in parsed]
        per_task = table.groupby("task").valid.mean().to_numpy()
        low, high = bootstrap_interval(per_task)
        reasons = Counter(e.reason.split(";")[0][:60] for e in parsed if e.status != OK)
        name = "constrained" if constrained else "free"
        print(f"{name:12s} valid {np.mean(table.valid):.1%} [{low:.1%}, {high:.1%}] ({int(table.valid.sum())}/{len(table)}), "
              f"{seconds:.0f} s, {np.mean(table.tokens):.0f} tokens a config", flush=True)
        for reason, n in reasons.most_common(4):
            print(f"    {n:3d} x {reason}")
        print(f"    e.g. {table.self_edit.iloc[0][:160]!r}")


if __name__ == "__main__":
    main()
