"""What every benchmark shares: the --model/--device choice, a header naming what ran where, and memory readings.

Benchmarks are scripts, not tests: each measures the things it compares side by side in one run
and prints their ratio, so a busy machine slows both sides alike.
"""
from __future__ import annotations

import argparse
import sys
import threading
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


class Peak:
    """Peak memory inside a `with` block: the CUDA allocator's peak on a GPU, else the process's
    resident memory sampled every 10 ms by a thread (ru_maxrss only ever grows, so it cannot tell
    two phases of one process apart). After the block: `.mib`, and `.extra`, the peak above what was
    in use when the block began (the working memory of what ran inside)."""

    def __init__(self, device: torch.device):
        self.device, self.mib, self._stop = device, float("nan"), threading.Event()

    def _sample(self):
        while not self._stop.wait(0.01):
            self.mib = max(self.mib, rss_mib())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated() / 2 ** 20
        else:
            self.mib = self.start = rss_mib()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mib = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self.mib = max(self.mib, rss_mib())
        self.extra = self.mib - self.start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
