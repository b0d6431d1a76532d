"""The "hf" generation backend: batched transformers generate. The kit's code reaches it through
`backends.generate_with`, which dispatches on the backend a config names.

    from seal_kit.generation import generate
    outs = generate(model, tokenizer, prompts, max_new_tokens=64)                 # greedy
    outs = generate(model, tokenizer, prompts, max_new_tokens=256, temperature=1.0, top_p=0.95, seed=0)
    outs[0].text, outs[0].tokens, outs[0].seconds

Prompts are sorted by length before batching (less left padding), and each output is cut at its
first end-of-sequence token: tokens after it are neither decoded nor counted.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int  # new tokens up to (not including) the first EOS
    seconds: float  # this output's share of its batch's wall time


def stop_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def encode(tokenizer, texts: list[str], device) -> dict:
    """Left-padded batch; special tokens are added only when the text does not carry them already."""
    bos = tokenizer.bos_token
    special = not (bos and all(t.startswith(bos) for t in texts))
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special).to(device)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, batch_size: int = 8, seed: int = 0, desc: str = "generating",
             progress: bool = True, route=None, json_schema: dict | None = None) -> list[Generation]:
    """Generate one completion per prompt; temperature 0 means greedy decoding. `route`, if given, is
    called with each batch's prompt indices and returns the context to generate in (a batched
    inner loop sends each row through its own adapter, `BatchedLoRA.rows`). `json_schema`: every
    completion can only be JSON matching it (`seal_kit.constrained`)."""
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size} and {max_new_tokens}")
    sampling = temperature > 0
    options = dict(max_new_tokens=max_new_tokens, do_sample=sampling, pad_token_id=tokenizer.pad_token_id)
    if sampling:
        options.update(temperature=temperature, top_p=top_p)
    else:  # unset the model's own sampling defaults, which greedy decoding would warn about
        options.update(temperature=None, top_p=None, top_k=None)
    stops = stop_ids(model, tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = encode(tokenizer, [prompts[i] for i in chunk], model.device)
        began = time.perf_counter()
        if json_schema is not None:
            from transformers import LogitsProcessorList

            from .constrained import schema_processor
            options["logits_processor"] = LogitsProcessorList([schema_processor(
                tokenizer, json_schema, batch["input_ids"].shape[1], stops)])
        with route(chunk) if route else contextlib.nullcontext():
            out = model.generate(**batch, **options)  # (B, prompt_len + new)
        share = (time.perf_counter() - began) / len(chunk)
        for row, i in zip(out[:, batch["input_ids"].shape[1]:].tolist(), chunk):
            end = next((n for n, tok in enumerate(row) if tok in stops), len(row))
            results[i] = Generation(tokenizer.decode(row[:end], skip_special_tokens=True).strip(), end, share)
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return results
