"""Benchmark: the vllm backend against hf for the kit's two kinds of generation, at the notebooks' sizes, in one run.

    make vllm-env && .venv-vllm/bin/python bench/vllm_cpu.py            # embedded model, notebook sizes
    .venv-vllm/bin/python bench/vllm_cpu.py --passages 2 --k 2 --edit-tokens 64      # a quick look

Self-edits: K per passage for --passages built-in passages (03: 3 x 5 training passages), sampled
(temperature 1, top-p 0.95, --edit-tokens new tokens) from a saved generator adapter (r64), as round 1 of
03 samples them: hf through peft with the generator active, vllm serving the saved folder. Tokens/s counts
new tokens up to the EOS. Answers: closed-book, greedy, --answer-tokens each, in two shapes: one candidate's
5 questions (01, and 03 with BATCH_CANDIDATES 1: hf folds the adapter in, vllm saves and serves it) and
K candidates per passage at once (BATCH_CANDIDATES K: hf routes the rows through BatchedLoRA, vllm serves
every adapter in one call), and the base model's answers to every passage's questions (no adapter: a
candidate's baseline). Both backends run in this process, float32, hf first and again after vLLM's
engine is up (vLLM binds the process's OpenMP threads; the second hf reading shows whether that slowed it).
The engine's start is reported once, apart: a notebook pays it once per kernel.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import parser

from seal_kit.batched import BatchedLoRA
from seal_kit.knowledge.data import load_passages
from seal_kit.doctor import examine, machine_line
from seal_kit.generator import Generator, GeneratorConfig
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.self_edit import SamplingConfig


def timed(fn):
    began = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - began


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=5, help="built-in passages (03's N_TRAIN: 5)")
    p.add_argument("--k", type=int, default=3, help="self-edits and candidates per passage (01 and 03: 3)")
    p.add_argument("--edit-tokens", type=int, default=256, help="longest self-edit (notebooks: 256)")
    p.add_argument("--answer-tokens", type=int, default=64, help="longest answer (notebooks: 64)")
    args = p.parse_args()
    facts = examine(measure=False)
    model, tokenizer = load_model(args.model, device=args.device, dtype="float32", threads=args.threads)
    passages = load_passages("builtin")[:args.passages]
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=1), EvalConfig(grader="contains",
                                                                                 max_new_tokens=args.answer_tokens))
    generator = Generator(task.inner, GeneratorConfig(epochs=1))
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    generator.update([(task.self_edit_prompt(q), q.context) for q in passages], seed=0, progress=False)
    generator.save(tmp)
    rows = [{"prompt": task.self_edit_prompt(q)} for q in passages for _ in range(args.k)]
    sampling = SamplingConfig(k=args.k, max_new_tokens=args.edit_tokens)
    lora = BatchedLoRA(task.inner)
    lora.train([(task.inner_job(q, q.context).examples, seed, {}) for q in passages for seed in range(args.k)])
    owners = list(range(len(passages) * args.k))
    asked = [q for q in passages for _ in range(args.k)]
    lora.load(0)

    def measure(backend: str) -> dict:
        sampling.backend = task.evaluation.backend = backend
        edits, edit_s = timed(lambda: generator.sample(rows, sampling, saved=tmp, progress=False))
        with task.inner.base_model():  # the base model's answers (a candidate's baseline): no adapter at all
            base, base_s = timed(lambda: task.answer(passages))
        one, one_s = timed(lambda: task.answer(passages[:1]))
        many, many_s = timed(lambda: task.answer(asked, lora, owners))
        n_one, n_many = len(one[0].answers), sum(len(r.answers) for r in many)
        return {"edit_tokens_s": edits.tokens.sum() / edit_s, "edit_s": edit_s, "edit_tokens": int(edits.tokens.sum()),
                "base_answers_s": sum(len(r.answers) for r in base) / base_s, "one_answers_s": n_one / one_s, "many_answers_s": n_many / many_s, "n_many": n_many,
                "answers": [a for r in many for a in r.answers]}

    task.answer(passages[:1])  # warm-up: first calls allocate
    hf = measure("hf")
    import os
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from seal_kit.backends import engine_rank, vllm_engine
    _, start_s = timed(lambda: [vllm_engine(model.name_or_path, engine_rank(rank), "float32", model.device.type)
                                for rank in (generator.config.rank, task.inner.config.rank)])
    task.evaluation.backend = "vllm"
    task.answer(passages[:1])  # warm-up
    vl = measure("vllm")
    hf_after = measure("hf")
    equal = sum(a == b for a, b in zip(hf["answers"], vl["answers"]))
    print(f"machine: {machine_line(facts)}")
    print(f"sizes: {len(rows)} self-edits x {args.edit_tokens} tokens from a r64 generator adapter; answers "
          f"{args.answer_tokens} tokens: 1 candidate x 5 questions, {len(owners)} candidates x 5 in one call")
    print(f"vLLM engines start (generator r64, inner loop r32): {start_s:.1f} s (once per process)")
    print(f"{'':22}{'hf':>10}{'vllm':>10}{'hf again':>10}{'vllm/hf':>9}")
    for key, label in (("edit_tokens_s", "self-edit tokens/s"), ("base_answers_s", "answers/s, base"),
                       ("one_answers_s", "answers/s, 1 cand."),
                       ("many_answers_s", f"answers/s, {len(owners)} cand.")):
        print(f"{label:22}{hf[key]:10.1f}{vl[key]:10.1f}{hf_after[key]:10.1f}{vl[key] / hf[key]:8.2f}x")
    print(f"greedy answers equal hf/vllm: {equal} of {len(hf['answers'])}")
    print(f"vllm/hf on this CPU: self-edit tokens/s {vl['edit_tokens_s'] / hf['edit_tokens_s']:.2f}x, answers/s "
          f"{vl['many_answers_s'] / hf['many_answers_s']:.2f}x ({len(owners)} candidates at once), "
          f"{vl['one_answers_s'] / hf['one_answers_s']:.2f}x (one)")


if __name__ == "__main__":
    main()
