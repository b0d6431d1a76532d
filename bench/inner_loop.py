"""Benchmark: seconds per self-edit evaluation (docs -> LoRA -> closed-book QA -> reward), ours vs a
reference-style loop, measured side by side in one run; plus training FLOP/s against a plain matmul.

    .venv/bin/python bench/inner_loop.py                       # embedded model, 2 passages, 10 epochs, CPU
    .venv/bin/python bench/inner_loop.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda --epochs 10

The reference-style loop repeats the three costs SEAL's public code paid per candidate: it reloads
the model, pads every document to 2048 tokens with the pads inside the loss, and re-grades the base
model's answers. Both loops use the same LoRA targets, epochs and self-edits, so the ratio isolates
those three choices. FLOP/s counts 4 x parameters x trained tokens (forward 2N, backward through the
frozen weights 2N; LoRA's own weights are negligible); N includes the input embedding, so for models
with untied embeddings the figure is an upper bound.
"""
from __future__ import annotations

import gc
import time

import torch
from common import Peak, parser, setup

from seal_kit.knowledge.data import load_passages
from seal_kit.inner_loop import InnerLoop, InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.precision import matmul_gflops
from seal_kit.self_edit import SamplingConfig
from seal_kit.strategies import generate_self_edits


class PaddedInnerLoop(InnerLoop):
    """The reference's padding: every document filled to a fixed length, pads trained on as tokens."""

    pad_length = 2048

    def encode(self, documents):
        pad = self.tokenizer.pad_token_id
        fill = lambda x: (x + [pad] * self.pad_length)[:self.pad_length]  # noqa: E731
        return [(fill(ids), fill(labels)) for ids, labels in super().encode(documents)]


def main():
    p = parser(__doc__)
    p.add_argument("--passages", type=int, default=2, help="built-in passages, one self-edit each")
    p.add_argument("--epochs", type=int, default=10, help="inner-loop epochs for both loops (paper: 10)")
    p.add_argument("--pad-length", type=int, default=2048, help="the reference-style fixed length")
    p.add_argument("--max-new-tokens", type=int, default=128, help="self-edit length")
    args = p.parse_args()

    model, tokenizer = setup(args)
    passages = load_passages("builtin", limit=args.passages)
    edits = generate_self_edits(model, tokenizer, passages, "implications",
                                SamplingConfig(k=1, max_new_tokens=args.max_new_tokens), progress=False)
    inner, evaluation = InnerLoopConfig(epochs=args.epochs), EvalConfig()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(passages)} candidates, {args.epochs} epoch(s), reference-style pad length {args.pad_length}")

    with Peak(model.device) as ours_peak:
        began = time.perf_counter()
        task = KnowledgeTask(model, tokenizer, inner, evaluation)
        ours = [task.score(p, e) for p, e in zip(passages, edits.self_edit)]
        ours_s = (time.perf_counter() - began) / len(passages)

    PaddedInnerLoop.pad_length = args.pad_length
    with Peak(model.device) as ref_peak:
        began = time.perf_counter()
        reference = []
        for p, e in zip(passages, edits.self_edit):
            fresh, tok = load_model(args.model, device=args.device)  # reloaded per candidate
            # a new task, so its baseline is re-graded
            ref_task = KnowledgeTask(fresh, tok, PaddedInnerLoop(fresh, tok, inner), evaluation)
            reference.append(ref_task.score(p, e))
            del fresh, ref_task
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # so reloads measure loading, not a growing heap
        ref_s = (time.perf_counter() - began) / len(passages)

    train_s = sum(r["train_seconds"] for r in ours)
    achieved = 4 * n_params * sum(r["tokens"] for r in ours) / train_s
    peak = matmul_gflops(model.dtype, model.device, 2048) * 1e9  # the same dtype, timed in this run
    print(f"seconds per self-edit evaluation: ours {ours_s:.2f} s, reference-style {ref_s:.2f} s, "
          f"ratio {ref_s / ours_s:.1f}x")
    for name, rows, peak_mem in (("ours", ours, ours_peak), ("reference-style", reference, ref_peak)):
        n = len(rows)
        print(f"  {name}: train {sum(r['train_seconds'] for r in rows) / n:.2f} s + answer "
              f"{sum(r['eval_seconds'] for r in rows) / n:.2f} s per candidate, "
              f"{sum(r['steps'] for r in rows) / n:.0f} steps, {sum(r['tokens'] for r in rows) / n:.0f} tokens trained, "
              f"peak memory {peak_mem.mib:.0f} MiB")
    print(f"rewards: ours {[round(r['reward'], 2) for r in ours]}, reference-style {[round(r['reward'], 2) for r in reference]}")
    print(f"training FLOP/s: achieved {achieved / 1e9:.1f} GFLOP/s, plain {model.dtype} matmul {peak / 1e9:.1f} GFLOP/s, "
          f"ratio {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
