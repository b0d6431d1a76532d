"""Precision: the dtype a run computes in, chosen by what the machine can do.

    from seal_kit.precision import choose_dtype, native_bf16, matmul_gflops
    choose_dtype("auto", torch.device("cpu"))   # bfloat16 where the CPU has bf16 units, else float32
    native_bf16(torch.device("cpu"))            # (True/False, why): read from the CPU's own feature flags
    matmul_gflops(torch.bfloat16)               # a square matmul's GFLOP/s, measured here

`DTYPE` is a notebook parameter, a profile value and `load_model`'s `dtype`. "auto": CUDA computes in
bf16 when the GPU supports it; a CPU in bf16 when it has native bf16 instructions (x86 AVX512-BF16 or
AMX, Arm's BF16 extension; read from the machine, not guessed from its name), else float32; Apple's
mps in float32. `SEAL_KIT_AUTO_DTYPE=float32` (or bfloat16) in the environment makes "auto" mean that
dtype on every machine: the test suite sets it, so CI computes alike on whichever CPU it draws. Only the frozen base is stored and computed in the chosen dtype: peft keeps the LoRA
weights (and so the optimiser's state) in float32, and the loss is taken over float32 logits.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

import torch

DTYPES = ("auto", "float32", "bfloat16")
AUTO_ENV = "SEAL_KIT_AUTO_DTYPE"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the operating system reports them (Linux: /proc/cpuinfo's `flags`
    (x86) or `Features` (Arm); macOS: sysctl's hw.optional names that are set). Empty where unknown."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
        return set()
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "hw.optional"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return set()
        return {line.split(":")[0].rsplit(".", 1)[-1].lower() for line in out.splitlines() if line.strip().endswith(": 1")}
    return set()


BF16_FLAGS = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX-BF16", "bf16": "Arm BF16", "feat_bf16": "Arm BF16"}


def native_bf16(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Whether `device` computes bfloat16 natively, and why this answer."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"{torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type == "mps":
        return False, "Apple's mps: the kit computes in float32 there"
    found = sorted({name for flag, name in BF16_FLAGS.items() if flag in _flags()})
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, ("the CPU reports no bf16 instructions (no AVX512-BF16, AMX or Arm BF16 among its flags); "
                   "bf16 would be emulated, far slower than float32")


@functools.cache
def _flags() -> frozenset[str]:
    return frozenset(cpu_flags())


def check_dtype(name) -> str:
    """A DTYPE value checked: one of DTYPES (a torch dtype is accepted by its name)."""
    if isinstance(name, torch.dtype):
        name = str(name).removeprefix("torch.")
    if name == "float16" or name == "half":
        return "float16"
    if name not in DTYPES:
        raise ValueError(f"DTYPE={name!r} is not a dtype the kit runs in; choose one of {', '.join(DTYPES)}")
    return name


def choose_dtype(name: str | torch.dtype = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """The torch dtype a DTYPE value means on `device`. float16 is refused on a CPU (no fast kernels, and
    training in it needs loss scaling); bfloat16 on a CPU without native bf16 runs, with a warning that
    names the slowdown measured here."""
    device, name = torch.device(device), check_dtype(name)
    if name == "auto" and os.environ.get(AUTO_ENV):
        name = check_dtype(os.environ[AUTO_ENV])
    if name == "auto":
        return torch.bfloat16 if device.type != "mps" and native_bf16(device)[0] else torch.float32
    if name == "float16":
        if device.type == "cpu":
            raise ValueError("DTYPE='float16' is refused on a CPU: it has no fast float16 kernels there and "
                             "training in it needs loss scaling; use 'auto', 'bfloat16' or 'float32'")
        return torch.float16
    dtype = getattr(torch, name)
    if dtype == torch.bfloat16 and device.type == "cpu" and not native_bf16(device)[0]:
        ratio = slowdown()
        warnings.warn(f"DTYPE='bfloat16' on a CPU without native bf16: its matmuls ran {ratio:.0f}x slower than "
                      "float32 here (measured just now), so this run will be much slower; DTYPE='auto' picks "
                      "float32 on this machine", stacklevel=2)
    return dtype


def matmul_gflops(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 1024,
                  budget: float = 0.5) -> float:
    """GFLOP/s of an n x n matmul in `dtype` on `device`, repeated for about `budget` seconds."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.mm(a, b)
    sync()
    began, repeats = time.perf_counter(), 0
    while True:
        torch.mm(a, b)
        repeats += 1
        sync()
        elapsed = time.perf_counter() - began
        if elapsed >= budget:
            return 2 * n ** 3 * repeats / elapsed / 1e9


@functools.cache
def slowdown() -> float:
    """float32 matmul GFLOP/s over bfloat16's on this CPU (small matrices: a fraction of a second)."""
    return matmul_gflops(torch.float32, n=256, budget=0.1) / matmul_gflops(torch.bfloat16, n=256, budget=0.1)
