"""Interval statistics: how far an accuracy over a few passages can be trusted.

    from seal_kit.stats import bootstrap_interval, mean_interval
    per_passage = [0.2, 0.6, 0.0, 1.0, 0.4]        # one accuracy per passage
    low, high = bootstrap_interval(per_passage)     # 95% percentile bootstrap of their mean
    mean, low, high = mean_interval(per_passage)    # the mean beside it; for gains, pass paired differences
    paired_gain(self_edit, passage)                 # {"gain", "ci_low", "ci_high", "n_passages"}: self_edit - passage

Passages, not questions, are resampled: the questions of one passage share its adapter, so they are
not independent draws, and a passage is the unit the paper averages over (its reported accuracy is a
mean of per-passage means).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_interval(values: Sequence[float], level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`: resample them with replacement
    `resamples` times (a fixed `seed`, so a run's interval is reproducible) and take the central
    `level` share of the resampled means."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"bootstrap_interval needs a non-empty flat list of numbers, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("bootstrap_interval: values hold NaN or infinity; drop or fill them first")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (0.95 for a 95% interval), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be a positive number, got {resamples}")
    picks = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))  # (resamples, n)
    means = data[picks].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """The mean of `values` and its percentile bootstrap interval (`bootstrap_interval`'s defaults): an
    accuracy over passages, or a gain when `values` are differences paired passage by passage."""
    low, high = bootstrap_interval(values, level=level)  # checks `values` first
    return float(np.mean(np.asarray(values, dtype=float))), low, high


def paired_gain(values: Sequence[float], controls: Sequence[float], level: float = 0.95, resamples: int = 2000,
                seed: int = 0) -> dict:
    """How much `values` beat `controls`, passage by passage (both in the same passage order): the mean of the
    differences with their percentile bootstrap interval, and the number of passages."""
    if len(values) != len(controls):
        raise ValueError(f"paired_gain pairs one value per passage with one control, got {len(values)} values "
                         f"and {len(controls)} controls")
    differences = np.asarray(values, dtype=float) - np.asarray(controls, dtype=float)
    low, high = bootstrap_interval(differences, level=level, resamples=resamples, seed=seed)
    return {"gain": float(differences.mean()), "ci_low": low, "ci_high": high, "n_passages": int(differences.size)}
