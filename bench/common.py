"""What every benchmark shares: the --model/--device choice, a header naming what ran where, and memory readings.

Benchmarks are scripts, not tests: each measures the things it compares side by side in one run
and prints their ratio, so a busy machine slows both sides alike.
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from seal_kit.models import load_model  # noqa: E402


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded", help="model spec: embedded, tiny, a HF id or folder (default: embedded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p


def setup(args):
    """Load the model named by --model on --device and print the header line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model, device=args.device)
    n = sum(p.numel() for p in model.parameters())
    gpu = f" ({torch.cuda.get_device_name()})" if model.device.type == "cuda" else ""
    print(f"model {args.model} ({n / 1e6:.0f}M params) on {model.device}{gpu} {model.dtype}, "
          f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}", flush=True)
    return model, tokenizer


def rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(device: torch.device) -> float:
    """Peak memory so far: the CUDA allocator's peak on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
