"""Grids of headless runs: a parameter grid, one run directory per point, and the table of their results.

    from seal_kit.sweep import grid_runs, sweep, list_runs
    sets = grid_runs({"PROMPT": ["implications", "rewrite"], "K": [3]})  # the cartesian product, as dicts
    table = sweep("02_knowledge_incorporation", sets, "outputs/sweeps/prompts", jobs=2)   # a DataFrame
    list_runs("outputs/runs")                                          # every run directory with its status

A sweep gives every parameter set its own run directory, named after the parameters that vary, so
running the same sweep again skips the runs that finished (their metrics.json exists) and retries the
others: a failed run is recorded with the failing cell and its error and never stops the rest. The
summary (parameters + flattened metrics + status) is saved as summary.csv / summary.parquet and as a
plotly table in summary.html. One run is `seal_kit.headless.execute`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from .headless import FAILED, RunResult, check_parameters, execute, find_notebook, notebook_parameters
from .paths import SWEEPS
from .runs import METRICS
from .storage import atomic_write
from .tracking import flatten


def grid_runs(grid: dict[str, list], fixed: dict | None = None) -> list[dict]:
    """Every combination of the grid's values (in the order given), each with the fixed parameters."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid: {key!r} must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [{**(fixed or {}), **dict(zip(keys, combo))} for combo in itertools.product(*(grid[k] for k in keys))]


def load_grid(path: str | Path, grid: dict | None = None, overrides: dict | None = None) -> tuple[str | None, list[dict]]:
    """A sweep file: `notebook` (optional), `parameters` (fixed), and `grid` (key -> list, the product)
    and/or `runs` (a list of parameter dicts), by path or by the name of one the kit ships ("prompt_ablation").
    `grid` replaces the file's grid; `overrides` go into every set. Returns (notebook, parameter sets)."""
    shipped = SWEEPS / f"{Path(path).name.removesuffix('.yaml')}.yaml"
    if not Path(path).is_file():
        if not shipped.is_file():
            raise FileNotFoundError(f"no sweep file {str(path)!r}; give a path to a YAML file or one of: "
                                    f"{', '.join(sorted(p.stem for p in SWEEPS.glob('*.yaml')))}")
        path = shipped
    spec = yaml.safe_load(Path(path).read_text()) or {}
    known = {"notebook", "parameters", "grid", "runs"}
    unknown = sorted(set(spec) - known) if isinstance(spec, dict) else ["(not a mapping)"]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a sweep file has {', '.join(sorted(known))}")
    fixed = {**(spec.get("parameters") or {}), **(overrides or {})}
    grid = spec.get("grid") if grid is None else grid
    sets = grid_runs(grid, fixed) if grid else []
    sets += [{**fixed, **r, **(overrides or {})} for r in spec.get("runs") or []]
    if not sets:
        raise ValueError(f"{path}: no runs; give `grid:` (key: [values]) and/or `runs:` (a list of parameter sets)")
    notebook = spec.get("notebook")
    if isinstance(notebook, int):  # YAML reads `notebook: 02` as the number 2
        notebook = f"{notebook:02d}"
    return notebook, sets


def run_name(parameters: dict, varying: list[str]) -> str:
    """A stable directory name from the varying parameters (a short hash keeps long values unique)."""
    shown = "_".join(f"{k}={parameters[k]}" for k in varying if k in parameters) or "run"
    slug = re.sub(r"[^A-Za-z0-9=.+-]+", "-", shown).strip("-")[:80]
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{slug}-{digest}"


def summarize(results: list[RunResult]) -> pd.DataFrame:
    """One row per run: its parameters, status, seconds, error, and every scalar metric (nested keys dotted)."""
    rows = []
    for r in results:
        metrics_path = Path(r.run_dir) / METRICS
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        scalar = {k: v for k, v in flatten(metrics, "metrics.").items()
                  if v is None or isinstance(v, (int, float, str, bool))}  # lists (per-task tables) left out
        rows.append({**r.parameters, "status": r.status, "seconds": r.seconds, "error": r.error,
                     "failed_cell": r.failed_cell, "run_dir": r.run_dir, **scalar})
    return pd.DataFrame(rows)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Columns parquet can store: a column mixing types (a list beside a string, 1e-3 beside 0.5) as text."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            kinds = {type(v) for v in table[column] if v is not None}
            if len(kinds) > 1 or kinds & {list, dict, tuple}:
                table[column] = [None if v is None else json.dumps(v, default=str) if isinstance(v, (list, dict, tuple))
                                 else str(v) for v in table[column]]
    return table


def placements(jobs: int, notebook: str | Path) -> list[dict]:
    """Where each of `jobs` runs at a time goes: a GPU each in turn (DEVICE cuda:i) when there are GPUs,
    else an equal share of the CPU cores (THREADS), so that the kernels do not fight over them. Empty for
    one job at a time, or a notebook without these parameters."""
    known = set(notebook_parameters(notebook))
    if jobs == 1 or not {"DEVICE", "THREADS"} <= known:
        return [{}] * jobs
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        return [{"DEVICE": f"cuda:{i % gpus}"} for i in range(jobs)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [{"THREADS": max(1, cores // jobs)} for _ in range(jobs)]


def sweep(notebook: str | Path, parameter_sets: list[dict], out_dir: str | Path, jobs: int = 1,
          progress: bool = True, profile: str | None = None) -> pd.DataFrame:
    """Run `notebook` once per parameter set (`jobs` at a time, each placed by `placements` unless its
    parameters say DEVICE or THREADS), each in `out_dir/<name>`; finished runs are skipped. Writes and
    returns the summary table. `profile` names the profile the sets came from (recorded in each run)."""
    if jobs < 1 or not parameter_sets:
        raise ValueError(f"sweep needs jobs >= 1 and at least one parameter set; got {jobs} and {len(parameter_sets)}")
    from tqdm.auto import tqdm

    for parameters in parameter_sets:  # a misspelled name refuses the sweep before any point runs
        check_parameters(notebook, parameters)
    out_dir = Path(out_dir).resolve()
    varying = [k for k in dict.fromkeys(k for p in parameter_sets for k in p)
               if len({json.dumps(p.get(k), sort_keys=True, default=str) for p in parameter_sets}) > 1]
    dirs = [out_dir / run_name(p, varying) for p in parameter_sets]
    if len(set(dirs)) < len(dirs):
        raise ValueError("sweep: two parameter sets are identical; each run needs its own parameters")
    bar = tqdm(total=len(dirs), desc=f"sweep {find_notebook(notebook).stem}", disable=not progress)

    slots = queue.Queue()
    for place in placements(jobs, notebook):
        slots.put(place)

    def one(args):
        place = slots.get()  # a free device or share of cores, given back when the run ends
        try:
            result = execute(notebook, *args, placement={k: v for k, v in place.items() if k not in args[1]},
                             profile=profile)
        except Exception as err:  # one point's trouble fails that point alone; the summary is still written
            result = RunResult(str(args[0]), args[1], "failed", 0.0, f"{type(err).__name__}: {err}")
        finally:
            slots.put(place)
        bar.update(1)
        bar.set_postfix(last=result.status)
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own kernel process
        results = list(pool.map(one, zip(dirs, parameter_sets)))
    bar.close()
    table = summarize(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "summary.csv", table.to_csv(index=False))
    atomic_write(out_dir / "summary.parquet", _typed(table).to_parquet(index=False))
    from .plots import save_html, summary_table

    save_html(summary_table(table, f"sweep of {find_notebook(notebook).name}"), out_dir / "summary.html")
    return table


def list_runs(root: str | Path) -> pd.DataFrame:
    """Every run directory below `root` (a folder holding config.yaml) with its status and main facts."""
    rows = []
    for config in sorted(Path(root).rglob("config.yaml")):
        run_dir = config.parent
        failed = run_dir / FAILED
        status = "finished" if (run_dir / METRICS).exists() else "failed" if failed.exists() else "unfinished"
        name = (yaml.safe_load(config.read_text()) or {}).get("name", "")
        error = json.loads(failed.read_text()).get("error", "") if status == "failed" else ""
        rows.append({"run_dir": str(run_dir), "name": name, "status": status, "error": error,
                     "modified": pd.Timestamp(max(p.stat().st_mtime for p in run_dir.iterdir()), unit="s")})
    return pd.DataFrame(rows, columns=["run_dir", "name", "status", "error", "modified"])
