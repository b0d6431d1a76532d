"""Benchmark: notebook 00 (the paper's evidence) at its defaults, headless, as a learner's Run All would run it.

    .venv/bin/python bench/papers_evidence.py            # all 200 passages, into a temporary run directory
    .venv/bin/python bench/papers_evidence.py --smoke    # the smoke profile's 20 passages (the test suite's run)

Prints the papermill run's wall time (kernel start and imports included) with the CPU model and the cores this
process may use. No model is loaded: the time goes to reading the reference files, grading every distinct
answer with the default grader and measuring every published self-edit (`seal_kit.knowledge.edit_stats`). It needs the
reference data (../shared/data/seal_reference, $SEAL_KIT_REFERENCE, or the cache). On a shared machine run it
when the cores are idle, or read the load average it prints beside the time.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from seal_kit.paths import NOTEBOOKS  # noqa: E402


def cpu_model() -> str:
    """The CPU's name as the kernel reports it (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="the smoke profile's 20 passages instead of all 200")
    args = p.parse_args()
    import papermill

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU {cpu_model()}, {cores} cores available, load average {os.getloadavg()[0]:.1f} before the run",
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        papermill.execute_notebook(str(NOTEBOOKS / "00_papers_evidence.ipynb"), str(Path(folder) / "00.ipynb"),
                                   cwd=str(NOTEBOOKS), progress_bar=False, execution_timeout=300,
                                   parameters={"RUN_DIR": str(Path(folder) / "run"), "SMOKE": args.smoke})
        seconds = time.perf_counter() - began
    print(f"00_papers_evidence ({'smoke: 20' if args.smoke else 'defaults: 200'} passages): {seconds:.1f} s wall, "
          f"load average {os.getloadavg()[0]:.1f} after", flush=True)


if __name__ == "__main__":
    main()
