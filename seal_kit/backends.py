"""Generation backends: "hf" (transformers' generate, the default and the only one CI needs) or
"vllm" (GPU; `pip install 'seal-kit[vllm]'`), chosen by `SamplingConfig.backend` / `EvalConfig.backend`.

    from seal_kit.backends import generate_with
    outs = generate_with("vllm", model, tokenizer, prompts, max_new_tokens=256, temperature=1.0,
                         top_p=0.95, seed=0, adapters=["runs/x/round-0/generator/generator", None, ...])

Both return `generation.Generation` rows (text, tokens, seconds) in prompt order. vLLM serves the
base model from its folder or hub id (`model.name_or_path`) once per process, and LoRA adapters
from their saved peft folders, one per prompt if wanted: the K adapted models of a round are
evaluated in one call. With "hf", adapters must already be in `model` (the caller routes them).
"""
from __future__ import annotations

import time
from pathlib import Path

from .generation import Generation, generate

BACKENDS = ("hf", "vllm")
_ENGINES: dict = {}


def check_backend(name: str, owner: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"{owner}.backend must be one of {list(BACKENDS)}, got {name!r}")


def vllm_engine(model_path: str, max_lora_rank: int = 64, max_loras: int = 8, gpu_memory_utilization: float = 0.4):
    """One vLLM engine per base model and process, with LoRA serving on (it shares the GPU with the
    HF model that trains, hence the memory share)."""
    key = (model_path, max_lora_rank, max_loras)
    if key not in _ENGINES:
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("the vllm backend needs vLLM on a CUDA machine: pip install 'seal-kit[vllm]'") from None
        _ENGINES[key] = LLM(model=model_path, enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras,
                            gpu_memory_utilization=gpu_memory_utilization, dtype="auto")
    return _ENGINES[key]


def vllm_generate(model_path: str, prompts: list[str], *, max_new_tokens: int, temperature: float, top_p: float,
                  seed: int, adapters: list[str | None] | None = None, max_lora_rank: int = 64) -> list[Generation]:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    folders = sorted({str(Path(a)) for a in adapters or [] if a})
    ids = {folder: n + 1 for n, folder in enumerate(folders)}  # vLLM wants a positive int id per adapter
    requests = [LoRARequest(f"adapter-{ids[str(Path(a))]}", ids[str(Path(a))], str(Path(a))) if a else None
                for a in adapters] if adapters else None
    engine = vllm_engine(model_path, max_lora_rank, max_loras=max(len(folders), 1))
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                            seed=seed)
    began = time.perf_counter()
    outs = engine.generate(prompts, params, lora_request=requests, use_tqdm=False)
    share = (time.perf_counter() - began) / max(len(prompts), 1)
    return [Generation(o.outputs[0].text.strip(), len(o.outputs[0].token_ids), share) for o in outs]


def generate_with(backend: str, model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
                  top_p: float = 1.0, seed: int = 0, batch_size: int = 8, adapters: list[str | None] | None = None,
                  max_lora_rank: int = 64, desc: str = "generating", progress: bool = True) -> list[Generation]:
    """Generate with the named backend; `adapters` (vllm only) names a saved adapter folder per prompt."""
    check_backend(backend, "generate_with")
    if backend == "vllm":
        return vllm_generate(model.name_or_path, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed, adapters=adapters, max_lora_rank=max_lora_rank)
    if adapters is not None and any(adapters):
        raise ValueError("the hf backend generates with the adapters already in the model; saved adapter folders "
                         "are for the vllm backend")
    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    batch_size=batch_size, seed=seed, desc=desc, progress=progress)
