"""Benchmark: self-edit generation tokens/s, batched vs one prompt at a time.

    .venv/bin/python bench/generation.py                         # embedded model, CPU, 8 prompts
    .venv/bin/python bench/generation.py --model Qwen/Qwen2.5-0.5B-Instruct --device cuda --prompts 32 --batch 32
    .venv/bin/python bench/generation.py --device cuda --vllm    # adds the vllm backend (the [vllm] extra)

Both sides sample the same self-edit prompts (the "implications" prompt over built-in passages)
with the same settings; tokens are new tokens up to each output's first end-of-sequence token.
"""
from __future__ import annotations

import time

from common import Peak, parser, setup

from seal_kit.backends import generate_with
from seal_kit.knowledge.data import load_passages
from seal_kit.prompts import self_edit_prompt


def main():
    p = parser(__doc__)
    p.add_argument("--prompts", type=int, default=8, help="self-edit prompts (built-in passages, repeated)")
    p.add_argument("--batch", type=int, default=8, help="prompts per batch on the batched side")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--vllm", action="store_true", help="also time the vllm backend (GPU)")
    args = p.parse_args()
    model, tokenizer = setup(args)
    passages = load_passages("builtin")
    prompts = [self_edit_prompt(tokenizer, passages[i % len(passages)], "implications") for i in range(args.prompts)]
    print(f"{len(prompts)} prompts, up to {args.max_new_tokens} new tokens, temperature 1.0, top_p 0.95")
    sides = [("one at a time", "hf", 1), (f"batched ({args.batch})", "hf", args.batch)]
    if args.vllm:
        sides.append(("vllm", "vllm", args.batch))
    rates = {}
    for name, backend, batch in sides:
        with Peak(model.device) as peak:
            began = time.perf_counter()
            outs = generate_with(backend, model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                 temperature=1.0, top_p=0.95, batch_size=batch, seed=0, progress=False)
            seconds = time.perf_counter() - began
        tokens = sum(o.tokens for o in outs)
        rates[name] = tokens / seconds
        print(f"  {name}: {tokens} tokens in {seconds:.1f} s = {rates[name]:.1f} tokens/s, "
              f"working memory {peak.extra:.0f} MiB", flush=True)
    base = rates["one at a time"]
    print("tokens/s vs one at a time: " + ", ".join(f"{n} {r / base:.2f}x" for n, r in rates.items() if n != "one at a time"))


if __name__ == "__main__":
    main()
