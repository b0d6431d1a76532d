"""Benchmark: every notebook headless under a profile, one at a time, timed, with the machine it ran on.

    .venv/bin/python bench/notebook_times.py --profile cpu-tiny
    .venv/bin/python bench/notebook_times.py --profile smoke --notebooks 01 02
    .venv/bin/python bench/notebook_times.py                   # the notebooks' defaults (hours on 2 cores)

Each notebook runs once into OUT/<notebook> through the same path as `seal-kit run` (the profile's values
for it, papermill, the run directory), one after another: two torch processes at once would slow both.
The table of wall-clock seconds prints under `seal-kit doctor`'s machine line and is written to
OUT/times.csv with the profile, the machine line and the kit's version, for the notebooks' time budgets.
A failed notebook is listed with its error and the rest go on; the same --out again skips the finished
ones and keeps the time they took. `--record` also writes the finished notebooks' times into the kit's times
table (seal_kit/data/notebook_times.csv, replacing that profile's rows for them), from which
`python -m seal_kit.workshop budgets` writes each notebook's time budget and the guide's agenda table.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
from common import parser

from seal_kit import workshop
from seal_kit.cli import _version, _with_profile
from seal_kit.doctor import examine, machine_line
from seal_kit.paths import new_run_path, notebooks as notebook_paths
from seal_kit.headless import execute, find_notebook


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--profile", default=None, help="a run profile (cpu-tiny, smoke, ...); default: none, the defaults")
    p.add_argument("--notebooks", nargs="*", default=None, help="names or numbers (default: every notebook)")
    p.add_argument("--out", default=None, help="where the runs and times.csv go (the same again resumes)")
    p.add_argument("--record", action="store_true", help="write the finished times into seal_kit/data/notebook_times.csv")
    args = p.parse_args()
    notebooks = [find_notebook(n) for n in args.notebooks] if args.notebooks else notebook_paths()
    out = Path(args.out or new_run_path(f"notebook-times-{args.profile or 'defaults'}", "benchmarks"))
    machine = machine_line(examine(measure=False))
    rows = []
    for path in notebooks:
        parameters = _with_profile({}, args.profile, path.stem)
        began = time.perf_counter()
        result = execute(path, out / path.stem, parameters)
        print(f"{path.stem}: {result.status} in {result.seconds:.0f} s"
              + (f" ({result.error})" if result.error else ""), flush=True)
        rows.append({"notebook": path.stem, "status": result.status, "seconds": round(result.seconds, 1),
                     "wall_seconds_now": round(time.perf_counter() - began, 1), "error": result.error})
    table = pd.DataFrame(rows).assign(profile=args.profile or "defaults", machine=machine, version=_version(),
                                      date=time.strftime("%Y-%m-%d"))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "times.csv", index=False)
    print(f"\nmachine: {machine}\nprofile: {args.profile or 'defaults (none)'}")
    print(table.assign(minutes=(table.seconds / 60).round(1))[["notebook", "status", "seconds", "minutes"]]
          .to_string(index=False))
    print(f"times: {out / 'times.csv'}")
    if args.record:
        finished = table[table.status.isin(["finished", "skipped"])].assign(status="finished")  # skipped: finished before
        finished = finished[list(workshop.times().columns)]
        known = workshop.times()
        known = known[~(known.profile.eq(table.profile.iloc[0]) & known.notebook.isin(finished.notebook))]
        pd.concat([known, finished]).sort_values(["profile", "notebook"]).to_csv(workshop.TIMES, index=False)
        print(f"recorded in {workshop.TIMES}; now run `python -m seal_kit.workshop budgets`")
    return 1 if (table.status == "failed").any() else 0


if __name__ == "__main__":
    sys.exit(main())
