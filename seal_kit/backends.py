"""Generation backends and the kit's one generation entry point, `generate_with`: self-edit sampling,
closed-book answering, ARC inference and the local judge all generate through it, so the backend
named in `SamplingConfig.backend`, `EvalConfig.backend`, `ArcConfig.backend` or `LocalJudge(backend=)`
applies wherever that config is used.

    from seal_kit.backends import generate_with
    outs = generate_with("hf", model, tokenizer, prompts, max_new_tokens=64)        # greedy, the model as it stands
    outs = generate_with("vllm", model, tokenizer, prompts, max_new_tokens=256, temperature=1.0,
                         top_p=0.95, seed=0, adapters=["runs/x/round-0/generator/generator", None, ...])

"hf" is transformers' generate (`generation.generate`, the default and the only one CI needs);
"vllm" needs a CUDA machine (`pip install 'seal-kit[vllm]'`). Both return `generation.Generation`
rows (text, tokens, seconds) in prompt order, from the model as it stands: with "hf", `model` itself
(`route` may send each batch's rows through their own adapters, see `generation.generate`); with
"vllm", the base weights from `model.name_or_path` (weights changed in memory only, such as a merged
update, are not seen) plus, for a PeftModel, its active adapter when it is switched on, saved to a
temporary folder first. `adapters` (vllm only) instead names a saved adapter folder per prompt, or None for the
base: the K adapted models of a round are evaluated in one call.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from .generation import Generation, generate

_ENGINES: dict = {}
_LORA_IDS = itertools.count(1)  # vLLM caches an adapter under its id for the engine's life: never reuse one


def check_backend(name: str, owner: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"{owner}.backend must be one of {list(BACKENDS)}, got {name!r}")


def vllm_engine(model_path: str, max_lora_rank: int = 64, max_loras: int = 8, gpu_memory_utilization: float = 0.4):
    """One vLLM engine per base model and LoRA rank in a process, with LoRA serving on (it shares the
    GPU with the HF model that trains, hence the memory share). A call with more adapters than
    `max_loras` still runs: vLLM schedules at most that many adapters per batch."""
    key = (model_path, max_lora_rank)
    if key not in _ENGINES:
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("the vllm backend needs vLLM on a CUDA machine: pip install 'seal-kit[vllm]'") from None
        _ENGINES[key] = LLM(model=model_path, enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras,
                            gpu_memory_utilization=gpu_memory_utilization, dtype="auto")
    return _ENGINES[key]


def vllm_generate(model_path: str, prompts: list[str], *, max_new_tokens: int, temperature: float, top_p: float,
                  seed: int, adapters: list[str | None] | None = None, max_lora_rank: int = 64,
                  json_schema: dict | None = None) -> list[Generation]:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    folders = sorted({str(Path(a)) for a in adapters or [] if a})
    ids = {folder: next(_LORA_IDS) for folder in folders}  # a folder's weights may differ from one call to the next
    requests = [LoRARequest(f"adapter-{ids[str(Path(a))]}", ids[str(Path(a))], str(Path(a))) if a else None
                for a in adapters] if adapters else None
    engine = vllm_engine(model_path, max_lora_rank)
    constraint = {}
    if json_schema is not None:  # vLLM's own structured outputs (guided decoding before vLLM 0.12)
        try:
            from vllm.sampling_params import StructuredOutputsParams
            constraint = {"structured_outputs": StructuredOutputsParams(json=json_schema)}
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams
            constraint = {"guided_decoding": GuidedDecodingParams(json=json_schema)}
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                            seed=seed, **constraint)
    began = time.perf_counter()
    outs = engine.generate(prompts, params, lora_request=requests, use_tqdm=False)
    share = (time.perf_counter() - began) / max(len(prompts), 1)
    return [Generation(o.outputs[0].text.strip(), len(o.outputs[0].token_ids), share) for o in outs]


def save_active_adapter(model, folder) -> str | None:
    """The adapter a peft model generates with, saved in peft format under `folder`, and the folder it
    landed in; None for a model that is no PeftModel or whose adapters are switched off (its base)."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)] if isinstance(model, PeftModel) else []
    if not layers or any(layer.disable_adapters for layer in layers):
        return None
    name = model.active_adapter
    model.save_pretrained(str(folder), selected_adapters=[name])
    return str(Path(folder) if name == "default" else Path(folder) / name)  # peft nests all but "default"


def _hf(model, tokenizer, prompts, *, adapters, max_lora_rank, **options) -> list[Generation]:
    if adapters is not None and any(adapters):
        raise ValueError("the hf backend generates with the adapters already in the model; saved adapter folders "
                         "are for the vllm backend")
    return generate(model, tokenizer, prompts, **options)


def _vllm(model, tokenizer, prompts, *, max_new_tokens, temperature, top_p, seed, adapters, max_lora_rank, route,
          json_schema, **hf_only) -> list[Generation]:  # batch_size, desc, progress: vLLM batches by itself
    if route is not None:
        raise ValueError("route is for the hf backend; the vllm backend routes prompts through saved adapter "
                         "folders (adapters=[...])")
    options = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                   max_lora_rank=max_lora_rank, json_schema=json_schema)
    if adapters is not None:
        return vllm_generate(model.name_or_path, prompts, adapters=adapters, **options)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_active_adapter(model, tmp)
        return vllm_generate(model.name_or_path, prompts, adapters=[folder] * len(prompts) if folder else None,
                             **options)


# name -> function(model, tokenizer, prompts, **the options of generate_with); check_backend reads the names
BACKENDS = {"hf": _hf, "vllm": _vllm}


def generate_with(backend: str, model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 0.0,
                  top_p: float = 1.0, seed: int = 0, batch_size: int = 8, adapters: list[str | None] | None = None,
                  max_lora_rank: int = 64, route=None, desc: str = "generating",
                  progress: bool = True, json_schema: dict | None = None) -> list[Generation]:
    """One completion per prompt from the model as it stands, generated by the named backend;
    temperature 0 means greedy. `adapters` (vllm) names a saved adapter folder per prompt, `route`
    (hf) the context each batch generates in; `max_lora_rank` (vllm) bounds the adapters' rank;
    `json_schema` constrains every completion to JSON matching it (hf: `seal_kit.constrained`; vllm: its own)."""
    check_backend(backend, "generate_with")
    return BACKENDS[backend](model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed, batch_size=batch_size, adapters=adapters,
                             max_lora_rank=max_lora_rank, route=route, desc=desc, progress=progress,
                             json_schema=json_schema)
