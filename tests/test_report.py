"""seal_kit.report: one computation of accuracy with intervals (02, 07's map), a finished run's tables, and the
generated report blocks of the README and docs (no number typed twice)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seal_kit import report
from seal_kit.stats import bootstrap_interval

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def per_passage():
    return pd.DataFrame({"base": [0.1, 0.2, 0.0, 0.3], "passage": [0.5, 0.4, 0.6, 0.2],
                         "self_edit": [0.6, 0.5, 0.6, np.nan]}, index=pd.Index(["a", "b", "c", "d"], name="passage_id"))


def test_conditions_are_the_mean_over_passages_with_the_bootstrap_interval(per_passage):
    table = report.conditions(per_passage, weights={"a": 1, "b": 1, "c": 2, "d": 4})
    low, high = bootstrap_interval([0.5, 0.4, 0.6, 0.2], level=0.95, resamples=2000, seed=0)
    assert table.loc["passage"].tolist()[:4] == pytest.approx([0.425, low, high, 4])
    assert table.at["passage", "accuracy_by_question"] == pytest.approx((0.5 + 0.4 + 1.2 + 0.8) / 8)
    assert table.at["self_edit", "n_passages"] == 3  # the passage it lacks is left out, not counted as 0
    assert table.at["self_edit", "accuracy"] == pytest.approx(17 / 30)


def test_paired_gains_pair_passage_by_passage_over_the_passages_both_have(per_passage):
    gains = report.paired_gains(per_passage, [("self_edit", "passage")])
    row = gains.iloc[0]
    assert (row["self-edits"], row["against"], row["n_passages"]) == ("self_edit", "passage", 3)
    assert row["gain"] == pytest.approx((0.1 + 0.1 + 0.0) / 3)
    assert row["ci_low"] <= row["gain"] <= row["ci_high"]


def test_markdown_folds_intervals_into_their_values_in_percent_and_points(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({
        "n_passages": 4, "prompt": "implications",
        "conditions": {"passage": {"accuracy": 0.425, "ci_low": 0.3, "ci_high": 0.55}},
        "paired_gains": [{"self-edits": "self_edit", "against": "passage", "gain": -0.05, "ci_low": -0.12,
                          "ci_high": 0.02, "n_passages": 4}],
        "prompt_rl": {"rewrite": {"before": 0.49, "before_ci": [0.45, 0.53], "n_passages": 200}}}))
    text = report.markdown(tmp_path)
    assert "| n_passages | 4 |" in text and "| prompt | implications |" in text
    assert "| passage | 42.5 [30.0, 55.0] |" in text
    assert "| self_edit | passage | -5.0 [-12.0, +2.0] | 4 |" in text
    assert "| rewrite | 49.0 [45.0, 53.0] | 200 |" in text
    assert report.markdown(tmp_path, ["conditions"]).startswith("**conditions**")
    with pytest.raises(ValueError, match="no table 'rounds'.*conditions"):
        report.markdown(tmp_path, ["rounds"])
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        report.markdown(tmp_path / "missing")


def test_the_docs_report_blocks_equal_what_the_report_prints_from_the_runs_they_cite(capsys):
    blocks = [p for p in report.documents(ROOT) if "<!-- report: " in p.read_text()]
    assert ROOT / "docs" / "results" / "shipped-runs.md" in blocks  # the shipped runs' page quotes them all
    assert report.main(["--check", "--root", str(ROOT)]) == 0, capsys.readouterr().out


def test_a_number_edited_by_hand_in_a_report_block_is_caught(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    shutil.copy(ROOT / "docs" / "results" / "shipped-runs.md", page)
    text = page.read_text()
    page.write_text(text.replace("| base | 13.4 [6.4, 21.4]", "| base | 31.4 [6.4, 21.4]", 1))
    assert page.read_text() != text  # the edit hit a generated number
    assert report.main(["--check", "--root", str(tmp_path)]) == 1
    assert "page.md" in capsys.readouterr().out
    assert report.main(["--root", str(tmp_path)]) == 0 and page.read_text() == text  # regenerated as it was


def test_seal_kit_report_prints_a_shipped_runs_tables(tmp_path, capsys):
    from seal_kit import cli, results

    run = results.open_run("02-workshop", tmp_path / "run")
    assert cli.main(["report", str(run), "--markdown", "--table", "conditions"]) == 0
    assert capsys.readouterr().out.strip() == report.markdown(run, ["conditions"])
    assert cli.main(["report", str(run), "--table", "paired_gains"]) == 0
    assert "self_edit  passage" in capsys.readouterr().out
    assert cli.main(["report", str(run), "--table", "rounds"]) == 2
    assert "no table 'rounds'" in capsys.readouterr().err
