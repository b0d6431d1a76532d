"""Bootstrap intervals over passages: reproducible, around the mean, zero width when nothing varies."""
import numpy as np
import pytest

from seal_kit.stats import bootstrap_interval, mean_interval, paired_gain


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    values = np.random.default_rng(1).random(30)
    assert bootstrap_interval(values, seed=3) == bootstrap_interval(list(values), seed=3)
    assert bootstrap_interval(values, seed=3) != bootstrap_interval(values, seed=4)


def test_the_interval_contains_the_mean_and_narrows_with_more_passages():
    rng = np.random.default_rng(2)
    few, many = rng.integers(0, 6, 10) / 5, rng.integers(0, 6, 400) / 5  # accuracies over 5 questions
    for values in (few, many):
        low, high = bootstrap_interval(values)
        assert low < np.mean(values) < high
    assert np.subtract(*bootstrap_interval(many)[::-1]) < np.subtract(*bootstrap_interval(few)[::-1])
    low99, high99 = bootstrap_interval(many, level=0.99)
    low95, high95 = bootstrap_interval(many, level=0.95)
    assert low99 <= low95 and high95 <= high99


def test_identical_values_give_a_zero_width_interval_at_their_mean():
    low, high = bootstrap_interval([0.4] * 7)
    assert low == high == np.mean([0.4] * 7)  # exactly the mean as numpy sums it (7 x 0.4 / 7 is not 0.4)
    assert bootstrap_interval([1.0]) == (1.0, 1.0)  # a single passage: nothing to resample


def test_mean_interval_is_the_mean_beside_its_bootstrap_interval():
    values = [0.0, 0.25, 1.0, 0.5]
    mean, low, high = mean_interval(values, level=0.9)
    assert mean == 0.4375 and (low, high) == bootstrap_interval(values, level=0.9)
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval([])


def test_a_paired_gain_is_the_mean_difference_passage_by_passage_with_its_interval():
    self_edit, passage = [0.6, 0.2, 0.9, 0.5], [0.2, 0.2, 0.4, 0.6]
    gain = paired_gain(self_edit, passage, level=0.9)
    differences = [0.4, 0.0, 0.5, -0.1]
    assert gain["gain"] == pytest.approx(0.2) and gain["n_passages"] == 4
    assert (gain["ci_low"], gain["ci_high"]) == bootstrap_interval(np.subtract(self_edit, passage), level=0.9)
    assert gain["ci_low"] < gain["gain"] < gain["ci_high"] and min(differences) <= gain["ci_low"]
    assert paired_gain(passage, passage) == {"gain": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_passages": 4}
    with pytest.raises(ValueError, match="4 values and 3 controls"):
        paired_gain(self_edit, passage[:3])


@pytest.mark.parametrize("values, level, message", [
    ([], 0.95, "non-empty"), ([0.5, float("nan")], 0.95, "NaN"), ([0.5], 1.0, "strictly between 0 and 1")])
def test_bad_input_is_named(values, level, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_interval(values, level=level)
