"""Benchmark: a sweep's wall time one run at a time vs `--jobs 2`, with and without placement.

    .venv/bin/python bench/sweep_jobs.py                 # 4 quickstart runs (smoke sizes, embedded model)
    .venv/bin/python bench/sweep_jobs.py --points 6 --notebook 02 --jobs 3

Three sweeps of the same points, each into a fresh folder: one run at a time; `--jobs N` with every
kernel taking all the cores (THREADS set to the core count: how side-by-side runs behaved before
placement); `--jobs N` placed (each kernel gets cores / N threads, what `seal-kit sweep --jobs` does
now). Prints each wall time and its ratio to one at a time. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seal_kit.sweep import sweep  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--notebook", default="01_quickstart")
    p.add_argument("--points", type=int, default=4, help="runs per sweep (seeds 0..points-1)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--model", default="embedded")
    p.add_argument("--skip-unplaced", action="store_true", help="leave out the all-cores-each sweep (slow: x8 measured)")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    points = [{"SMOKE": True, "MODEL": args.model, "SEED": s} for s in range(args.points)]
    modes = [("one at a time", 1, {}), (f"--jobs {args.jobs}, every kernel all {cores} cores", args.jobs,
                                         {"THREADS": cores}),
             (f"--jobs {args.jobs}, placed ({max(1, cores // args.jobs)} threads each)", args.jobs, {})]
    if args.skip_unplaced:
        del modes[1]
    print(f"{args.points} runs of {args.notebook} (smoke sizes, {args.model}), {cores} CPU cores")
    base = None
    with tempfile.TemporaryDirectory() as folder:
        for n, (name, jobs, extra) in enumerate(modes):
            began = time.perf_counter()
            table = sweep(args.notebook, [{**q, **extra} for q in points], Path(folder) / str(n), jobs=jobs,
                          progress=False)
            seconds = time.perf_counter() - began
            base = base or seconds
            failed = int((table.status != "finished").sum())
            print(f"{name:45s} {seconds:7.1f} s   x{seconds / base:.2f} of one at a time"
                  + (f"   ({failed} failed)" if failed else ""), flush=True)


if __name__ == "__main__":
    main()
