"""Benchmark: what each difference from the reference code changes, as a same-run A/B on the paper's passages.

    .venv/bin/python bench/reference_differences.py                         # embedded model, 8 seal-eval passages
    .venv/bin/python bench/reference_differences.py --passages 16 --arms kit,targets,schedule --out ab.jsonl

Every arm is the kit's knowledge-incorporation setup with one switch turned to the reference's value
(the last arm, `reference`, turns them all but the padding); each is scored on the same passages,
under the same seed and grader, in these conditions: base (no training), passage only, passage +
the model's own self-edit (one per passage, sampled once per prompt layout and shared by every arm),
and optionally passage + the paper's GPT-4.1 self-edit (`--conditions passage,own,gpt4_1`).
It prints, per arm and condition, the accuracy (mean of per-passage accuracies, as the paper) with a
95% bootstrap interval over passages, and the arm's paired effect against `kit` with its interval.
Records go to --out as they finish (JSON lines); a re-run with the same --out skips what is there.

Padding to 2048 tokens costs ~15x the time of an unpadded step on a CPU (measured: 24 s a step): the
`pad` arm uses --pad-to (default 512, pads still most of every document's loss) on --pad-conditions
(default: passage only); `--pad-to 2048 --pad-conditions passage,own` on a GPU is the exact emulation.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
from common import parser, setup

from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.reference import load_reference_passages, load_reference_self_edits
from seal_kit.self_edit import DocumentConfig, SamplingConfig
from seal_kit.strategies import generate_self_edits
from seal_kit.stats import bootstrap_interval

REFERENCE_INNER = dict(target_modules="q_proj,v_proj", schedule="linear", max_grad_norm=1.0)
ARMS = {  # name -> (InnerLoopConfig overrides, DocumentConfig split, prompt layout)
    "kit": ({}, "kit", "kit"),
    "targets": ({"target_modules": "q_proj,v_proj"}, "kit", "kit"),
    "schedule": ({"schedule": "linear"}, "kit", "kit"),
    "clip": ({"max_grad_norm": 1.0}, "kit", "kit"),
    "pad": ({"pad_to": None}, "kit", "kit"),  # pad_to filled in from --pad-to
    "split": ({}, "reference", "kit"),
    "layout": ({}, "kit", "reference"),
    "reference": (REFERENCE_INNER, "reference", "reference"),
}


def read(out: Path) -> dict:
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            if line.endswith("}"):
                record = json.loads(line)
                done[(record["arm"], record["condition"], record["passage_id"])] = record
    return done


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=8, help="seal-eval passages (the paper's evaluation set)")
    p.add_argument("--offset", type=int, default=0, help="first seal-eval passage used")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    p.add_argument("--conditions", default="passage,own", help="passage, own, gpt4_1 (base is always scored)")
    p.add_argument("--pad-to", type=int, default=512, help="the pad arm's length (reference: 2048)")
    p.add_argument("--pad-conditions", default="passage", help="the pad arm's conditions (padded steps are slow)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="own self-edits' length")
    p.add_argument("--grader", default="fitted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/bench/reference_differences.jsonl")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/differences-from-the-reference.md's)")
    args = p.parse_args()
    arms = args.arms.split(",")
    if unknown := [a for a in arms if a not in ARMS]:
        raise SystemExit(f"--arms: unknown {unknown}; choose from {', '.join(ARMS)}")
    conditions = args.conditions.split(",")
    passages = load_reference_passages("seal-eval")[args.offset:args.offset + args.passages]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read(out)
    gpt = load_reference_self_edits("gpt4_1", passages) if "gpt4_1" in conditions else None
    own: dict[str, dict[str, str]] = {}  # layout -> passage id -> self-edit

    for arm in arms:
        overrides, split, layout = ARMS[arm]
        overrides = {**overrides, "pad_to": args.pad_to} if arm == "pad" else overrides
        wanted = args.pad_conditions.split(",") if arm == "pad" else conditions
        todo = [(c, q) for c in ["base", *wanted] for q in passages if (arm, c, q.id) not in done]
        if not todo:
            continue
        model, tokenizer = setup(args)
        task = KnowledgeTask(model, tokenizer, InnerLoopConfig(**overrides), EvalConfig(grader=args.grader),
                             DocumentConfig(split=split), layout=layout)
        if "own" in conditions and layout not in own:
            edits = generate_self_edits(model, tokenizer, passages, "implications", SamplingConfig(
                k=1, max_new_tokens=args.max_new_tokens, seed=args.seed), layout=layout)
            own[layout] = dict(zip(edits.passage_id, edits.self_edit))
        for condition, passage in todo:
            if condition == "base":
                row = {**task.baseline(passage), "steps": 0, "final_loss": None}
            elif condition == "passage":
                row = task.score_passage_only(passage, seed=args.seed)
            else:
                edit = own[layout][passage.id] if condition == "own" else \
                    gpt[gpt.passage_id == passage.id].self_edit.iloc[0]
                row = task.score(passage, edit, seed=args.seed)
            record = {"arm": arm, "condition": condition, "passage_id": passage.id, "reward": row["reward"],
                      "steps": row.get("steps"), "final_loss": row.get("final_loss"),
                      "answers": row.get("answers"), "config": {**overrides, "split": split, "layout": layout}}
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            done[(arm, condition, passage.id)] = record
            print(f"{arm:9s} {condition:8s} {passage.id}: {row['reward']:.2f} ({row.get('steps')} steps)", flush=True)
        del task, model
        gc.collect()

    ids = [q.id for q in passages]
    print(f"\n{len(ids)} seal-eval passages ({sum(len(q.questions) for q in passages)} questions), grader "
          f"{args.grader}, seed {args.seed}; accuracy [95% CI over passages]; effect vs kit, paired [95% CI]")
    if args.markdown:
        print("\n| condition | arm | accuracy [95% CI] | effect vs kit, paired [95% CI] | steps | final loss |")
        print("|---|---|---|---|---|---|")
    for condition in ["base", *conditions]:
        for arm in arms:
            if not all((arm, condition, i) in done for i in ids):
                continue
            values = np.array([done[(arm, condition, i)]["reward"] for i in ids])
            low, high = bootstrap_interval(values)
            effect = ""
            if arm != "kit" and all(("kit", condition, i) in done for i in ids):
                diff = values - np.array([done[("kit", condition, i)]["reward"] for i in ids])
                d_low, d_high = bootstrap_interval(diff)
                effect = f"{diff.mean():+.3f} [{d_low:+.3f}, {d_high:+.3f}]"
            steps = np.mean([done[(arm, condition, i)]["steps"] for i in ids])
            losses = [done[(arm, condition, i)]["final_loss"] for i in ids if done[(arm, condition, i)]["final_loss"]]
            loss = f"{np.mean(losses):.3f}" if losses else ""
            accuracy = f"{values.mean():.3f} [{low:.3f}, {high:.3f}]"
            if args.markdown:
                print(f"| {condition} | {arm} | {accuracy} | {effect} | {steps:.0f} | {loss} |")
            else:
                print(f"{condition:8s} {arm:9s} {accuracy}" + (f"   effect {effect}" if effect else "")
                      + f"   steps {steps:.0f}" + (f", final loss {loss}" if loss else ""))


if __name__ == "__main__":
    main()
