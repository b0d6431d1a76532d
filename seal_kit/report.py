"""A run's results as tables with intervals: computed (from per-passage accuracy) and read back (from a run's files).

    from seal_kit import report
    table = report.conditions(per_passage, weights=n_questions)   # accuracy [95% CI] per condition (02, 07)
    gains = report.paired_gains(per_passage, [("self_edit", "passage")])   # paired over passages, with CI
    print(report.markdown("outputs/runs/<run>"))                 # a finished run's tables (`seal-kit report`)
    python -m seal_kit.report --check                             # the docs' report blocks equal their runs

One computation, three readers: notebook 02 aggregates its run with `conditions` and `paired_gains`,
`knowledge.strength_map.summarize` does the same per inner-loop setting, and `markdown` renders what a
finished run saved. Interval: percentile bootstrap over passages, 2,000 resamples, seed 0 (`INTERVAL`).

A document quotes a run through a block that is generated, never typed: the lines between
`<!-- report: NAME [TABLE ...] -->` and `<!-- /report -->` are `markdown(NAME)`'s tables, where NAME is a
shipped run (`seal-kit results`) or a run directory relative to the repository. `python -m seal_kit.report`
rewrites every block of the README and docs/; `--check` names each block that differs (CI runs it).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .runs import METRICS
from .stats import bootstrap_interval, paired_gain

INTERVAL = {"level": 0.95, "resamples": 2000, "seed": 0}
# Columns holding shares (accuracy, gains, rewards): shown in percent, or in points for a difference.
_SHARE = re.compile(r"accuracy|reward|gain|success|recites|^ci_|_low$|_high$|^paper|matched|baseline|^before$|^after$")
_BLOCK = re.compile(r"(<!-- report: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)


def conditions(per_passage: pd.DataFrame, weights: Mapping[str, float] | None = None, level: float = 0.95,
               resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per condition (a column of `per_passage`, indexed by passage): the mean over passages of per-passage
    accuracy with its bootstrap interval over passages, and the number of passages; with `weights` (questions
    per passage) also the accuracy over all questions (`accuracy_by_question`). Passages a condition lacks
    (NaN) are left out of its row."""
    rows = {}
    for name, column in per_passage.items():
        values = column.dropna()
        low, high = bootstrap_interval(values.to_numpy(), level=level, resamples=resamples, seed=seed)
        rows[name] = {"accuracy": float(values.mean()), "ci_low": low, "ci_high": high, "n_passages": len(values)}
        if weights is not None:
            rows[name]["accuracy_by_question"] = float(np.average(values, weights=values.index.map(weights)))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("condition")


def paired_gains(per_passage: pd.DataFrame, pairs: Sequence[tuple[str, str]], level: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each (condition, control) pair: the mean over passages of condition - control on the same passage, with
    its bootstrap interval, over the passages that have both."""
    rows = []
    for condition, control in pairs:
        both = per_passage[[condition, control]].dropna()
        rows.append({"self-edits": condition, "against": control,
                     **paired_gain(both[condition], both[control], level=level, resamples=resamples, seed=seed)})
    return pd.DataFrame(rows, columns=["self-edits", "against", "gain", "ci_low", "ci_high", "n_passages"])


def tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """A finished run's results as tables, from its metrics.json: numbers at the top level in one table
    (`run`), then one table per mapping or list of records (a condition, a round, a point of a map per row)."""
    path = Path(run_dir) / METRICS
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file; a finished run holds one (an unfinished run has no "
                                "results to report yet)") from None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object of results, got {type(metrics).__name__}")
    scalars = {k: v for k, v in metrics.items() if v is None or isinstance(v, (bool, int, float, str))}
    out = {"run": pd.DataFrame({"value": pd.Series(scalars, dtype=object)}).rename_axis("")} if scalars else {}
    for key, value in metrics.items():
        table = _table(value, key)
        if table is not None:
            out[key] = table
    return out


def _table(value, key: str = "value") -> pd.DataFrame | None:
    def flat(record: dict) -> dict:  # one level of nesting as dotted columns; deeper structure left out
        row = {}
        for k, v in record.items():
            if isinstance(v, dict):
                row |= {f"{k}.{i}": w for i, w in v.items() if not isinstance(w, (dict, list))}
            elif isinstance(v, list) and k.endswith("_ci") and len(v) == 2:  # an interval as [low, high]
                row[f"{k[:-3]}_low"], row[f"{k[:-3]}_high"] = v
            elif not isinstance(v, list):
                row[k] = v
        return row

    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return pd.DataFrame([flat(v) for v in value])
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return pd.DataFrame({key: value})
    if isinstance(value, dict) and value:
        if all(isinstance(v, dict) for v in value.values()):
            return pd.DataFrame.from_dict({str(k): flat(v) for k, v in value.items()}, orient="index").rename_axis("")
        if all(v is None or isinstance(v, (int, float)) for v in value.values()):
            return pd.DataFrame({key: pd.Series(value, dtype=object)}).rename_axis("")
    return None


# A column and the two columns holding its interval.
_INTERVALS = {"gain_over_matched": [("matched_low", "matched_high")]}


def _bounds(column: str, columns) -> tuple[str, str] | None:
    """The pair of columns holding `column`'s interval, if the table has one: its own `<column>_low/_high`,
    else `ci_low/ci_high` (or `low/high`) for the table's main share, `gain_low/gain_high` for a gain."""
    main = [("ci_low", "ci_high"), ("low", "high")] if column in ("accuracy", "gain", "reward") else []
    gains = [("gain_low", "gain_high")] if column.startswith("gain_") else []
    for pair in [*_INTERVALS.get(column, []), (f"{column}_low", f"{column}_high"), *main, *gains]:
        if set(pair) <= set(columns):
            return pair
    return None


def _cell(column: str, row: pd.Series) -> str:
    value = row[column]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    share = _SHARE.search(str(column)) if column != "value" else _SHARE.search(str(row.name))
    if not share:
        return str(value) if isinstance(value, (int, np.integer)) else f"{float(value):.4g}"
    points = "gain" in str(column) or "gain" in str(row.name)  # a difference: points, signed
    text = _short(float(value), True, points)
    if (pair := _bounds(column, row.index)) and not row[list(pair)].isna().any():
        low, high = (_short(float(row[c]), True, points) for c in pair)
        text += f" [{low}, {high}]"
    return text


def _markdown_table(table: pd.DataFrame) -> str:
    """A pipe table; shares in percent (differences in signed points), each with its 95% interval in brackets
    where the table has one, the interval's own columns folded into it."""
    folded = {c for column in table.columns if (pair := _bounds(str(column), table.columns)) for c in pair}
    columns = [c for c in table.columns if c not in folded]
    index = not isinstance(table.index, pd.RangeIndex)
    header = ([str(table.index.name or "")] if index else []) + [str(c) for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        lines.append("| " + " | ".join(([str(name)] if index else []) + [_cell(c, row) for c in columns]) + " |")
    return "\n".join(lines)


def markdown(run_dir: str | Path, names: Sequence[str] | None = None) -> str:
    """A finished run's tables (`tables`), or only those named, as markdown: shares in percent with their 95%
    intervals in brackets, gains in points."""
    return "\n\n".join(f"**{name}**\n\n{_markdown_table(table)}" for name, table in chosen(run_dir, names).items())


def chosen(run_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """`tables(run_dir)`, only those named (in that order) if `names`; a name the run lacks is refused, listing them."""
    found = tables(run_dir)
    unknown = [n for n in names or [] if n not in found]
    if unknown:
        raise ValueError(f"{run_dir}: no table {unknown[0]!r} in its results; it has {', '.join(found)}")
    return {name: found[name] for name in names or found}


HEADLINE_TERMS = ("accuracy", "reward", "gain", "success", "retention", "baseline")


def headline(metrics: dict, width: int = 240) -> str:
    """A run's main numbers in one line, from its metrics.json, whatever the notebook wrote there.

    Every notebook writes other keys, so the rule is about shapes, not names of runs: a number (or a
    short list of numbers) is a headline number where a key on its path names what a run is judged by
    (accuracy, reward, gain, success, retention, baseline) or where it stands at the top level (the
    sizes: n_passages 3). Dicts are read three levels deep and lists of records (rounds, table rows)
    row by row, each row named by its label fields (round 1, method seal), its numbers by their own keys. A number beside its interval
    (`x` with `x_ci`, `x_low`/`x_high`, or a record's `ci_low`/`ci_high` or `low`/`high`) is shown with
    it, as `0.61 [0.42, 0.79]`. Those come first (a notebook computes intervals for its results), then
    the other named numbers, then the top-level sizes; views of the same numbers (`accuracy_by_question`,
    `success_by_task_set`) are left out. Paths are dotted as in metrics.json; a named number between -1 and 1
    is a share, shown in % (a gain in signed points, `pts`), others to 3 significant digits; what does not fit
    in `width` characters is counted at the end."""
    found: list[tuple[int, int, str]] = []  # (rank, order, text)

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
            and abs(value) != float("inf")

    def interval(record: dict, key: str, first: bool):
        stem = key.split("_")[0]
        for low, high in ((f"{key}_low", f"{key}_high"), (f"{stem}_low", f"{stem}_high"),
                          *((("ci_low", "ci_high"), ("low", "high")) if first else ())):
            if number(record.get(low)) and number(record.get(high)):
                return record[low], record[high]
        ci = record.get(f"{key}_ci")
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(number(v) for v in ci):
            return tuple(ci)
        return None

    def walk(record: dict, path: str, depth: int, named: bool) -> None:
        first = True  # the record's first named number owns its `ci_low`/`low` bounds
        for key, value in record.items():
            key = str(key)
            if "_by_" in key or key in ("ci_low", "ci_high", "low", "high", "round") or key.endswith(("_low", "_high", "_ci")):
                continue
            label, is_named = f"{path}{key}", named or any(t in key.lower() for t in HEADLINE_TERMS)
            if number(value) and (is_named or depth == 0):
                bounds = interval(record, key, first and is_named)
                first = first and not (is_named and bounds)
                share = is_named and isinstance(value, float) and all(abs(v) <= 1 for v in (value, *(bounds or ())))
                points = share and "gain" in key.lower()
                unit = " pts" if points else "%" if share else ""
                text = f"{label} {_short(value, share, points)}{unit}" + (
                    f" [{_short(bounds[0], share, points)}, {_short(bounds[1], share, points)}]" if bounds else "")
                found.append((0 if bounds else 1 if is_named else 2, len(found), text))
            elif is_named and isinstance(value, list) and 0 < len(value) <= 8 and all(number(v) for v in value):
                share = all(isinstance(v, float) and abs(v) <= 1 for v in value)
                found.append((1, len(found), f"{label} [{', '.join(_short(v, share) for v in value)}]" + ("%" if share else "")))
            elif isinstance(value, dict) and depth < 2:
                walk(value, f"{label}.", depth + 1, is_named)
            elif isinstance(value, list) and depth < 2 and value and all(isinstance(v, dict) for v in value):
                for i, row in enumerate(value):  # a row's numbers are headline ones by their own names
                    walk(row, f"{label}[{_row_label(row, i)}].", depth + 1, False)

    walk(metrics, "", 0, False)
    shown, line = [], ""
    for _, _, text in sorted(found):
        candidate = "; ".join([*shown, text])
        if len(candidate) > width and shown:
            break
        shown, line = [*shown, text], candidate
    left = len(found) - len(shown)
    return (line or "no numbers in metrics.json") + (f"; +{left} more in metrics.json" if left else "")


def _short(value, share: bool = False, points: bool = False) -> str:
    """A number to 3 significant digits; a share (accuracy, reward: 0..1) in percent, a gain in signed points."""
    if share:
        return f"{100 * value:{'+' if points else ''}.1f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"


def _row_label(row: dict, index: int) -> str:
    """A record in a list named by its label fields (strings, or a round's number), else by its place."""
    labels = [str(v) for k, v in row.items() if isinstance(v, str) and len(v) <= 40][:2]
    if not labels and isinstance(row.get("round"), int):
        labels = [f"round {row['round']}"]
    return " / ".join(labels) or str(index)


def _resolve(name: str, root: Path, scratch: Path) -> Path:
    """A report block's run: a shipped run's name (written once into `scratch`) or a folder under `root`."""
    from . import results

    if name in results.index():
        target = scratch / name
        return target if (target / METRICS).exists() or any(target.rglob(METRICS)) else results.open_run(name, target)
    path = root / name
    if not path.is_dir():
        raise FileNotFoundError(f"report block names {name!r}: neither a shipped run ({', '.join(results.index())}) "
                                f"nor a run directory under {root}")
    return path


def render_blocks(text: str, root: Path, scratch: Path) -> str:
    """`text` with every report block's body regenerated from the run it names."""
    def fill(match: re.Match) -> str:
        name, *wanted = match["spec"].split()
        run = _resolve(name, root, scratch)
        if not (run / METRICS).exists():  # a sweep's folder: its map's metrics are one level down at most
            run = next(p.parent for p in sorted(run.rglob(METRICS)))
        return f"{match.group(1)}{markdown(run, wanted or None)}\n{match.group(4)}"

    return _BLOCK.sub(fill, text)


def documents(root: Path) -> list[Path]:
    """The files that may hold report blocks: the README and every page under docs/."""
    return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seal_kit.report", description="regenerate (or --check) the "
                                     "report blocks of the README and docs/ from the runs they name")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each block that differs")
    parser.add_argument("--root", default=".", help="the repository (default: the current folder)")
    args = parser.parse_args(argv)
    root, stale = Path(args.root), []
    with tempfile.TemporaryDirectory() as scratch:
        for path in documents(root):
            text = path.read_text(encoding="utf-8")
            new = render_blocks(text, root, Path(scratch))
            if new != text:
                stale.append(path)
                if not args.check:
                    path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{path}: report block(s) {'differ from their runs' if args.check else 'regenerated'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
