"""Experiment tracking, optional: a run's numbers also go to trackio, Weights & Biases or MLflow.

    run = runs.start_run("rest_em", RUN_DIR, config=..., tracker="wandb")   # a notebook's TRACKER
    run.track({"held_out_accuracy": 0.41}, step=1)                         # from the loop's callbacks
    run.finish(metrics)                                                    # the final scalars, then closed

The run directory stays the record; a tracker is a view of it, so nothing is tracked when a finished
run is only shown again. The library must be installed (`pip install trackio`, `wandb` or `mlflow`);
each is configured as usual (WANDB_MODE=offline, MLFLOW_TRACKING_URI, ...). Project "seal-kit", run
name the run directory's.
"""
from __future__ import annotations

import importlib
import math

TRACKERS = ("trackio", "wandb", "mlflow")
PROJECT = "seal-kit"


def scalars(values: dict) -> dict[str, float]:
    """The numbers among nested `values`, keys dotted ({"accuracy": {"base": 0.1}} -> {"accuracy.base": 0.1})."""
    return {key: float(value) for key, value in flatten(values).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


class Tracker:
    """One tracked run: `log(values, step)` sends the scalars among `values`; `finish()` closes it."""

    def __init__(self, kind: str, name: str, config: dict):
        if kind not in TRACKERS:
            raise ValueError(f"TRACKER={kind!r}: choose None or one of {', '.join(TRACKERS)}")
        try:
            self.library = importlib.import_module(kind)
        except ImportError as err:
            raise ImportError(f"TRACKER={kind!r} needs the {kind} library: pip install {kind}") from err
        self.kind = kind
        params = {k: str(v) for k, v in flatten(config).items()}
        if kind == "trackio":
            self.library.init(project=PROJECT, name=name, config=params)
        elif kind == "wandb":
            self.handle = self.library.init(project=PROJECT, name=name, config=params)
        else:
            self.library.set_experiment(PROJECT)
            self.library.start_run(run_name=name)
            self.library.log_params(params)

    def log(self, values: dict, step: int | None = None) -> None:
        numbers = scalars(values)
        if not numbers:
            return
        if self.kind == "trackio":
            self.library.log(numbers, step=step)
        elif self.kind == "wandb":
            self.handle.log(numbers, step=step)
        else:
            self.library.log_metrics(numbers, step=step)

    def finish(self) -> None:
        if self.kind == "trackio":
            self.library.finish()
        elif self.kind == "wandb":
            self.handle.finish()
        else:
            self.library.end_run()


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested dicts to one level, keys dotted ({"a": {"b": 1}} -> {"a.b": 1}); other values as they are."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
