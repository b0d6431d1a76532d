"""Each self-edit strategy through notebooks 02 and 03 in smoke mode (the tiny random model)."""
import json

import pandas as pd
import pytest
from test_notebooks import REFERENCE, rerun_reads_back, run_notebook

from seal_kit.knowledge.task import matched_condition
from seal_kit.strategies import STRATEGIES


def test_knowledge_incorporation_compares_every_strategy_at_one_budget(tmp_path):
    compared = ["implications", *STRATEGIES]
    metrics = run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", K=1, BUDGET=24,
                           MATCHED_CONTROL=True, STRATEGIES=compared)
    conditions = [f"self_edit:{name}" for name in compared]
    assert set(conditions) | {matched_condition(c) for c in conditions} <= set(metrics["accuracy"])
    assert {(g["self-edits"], g["against"]) for g in metrics["paired_gains"]} == {
        (c, control) for c in conditions for control in ("passage", matched_condition(c))}
    cost = {c["condition"]: c for c in metrics["cost"]}
    assert list(cost) == conditions and metrics["strategies"] == compared and metrics["budget"] == 24
    assert all(cost[c]["training_tokens"] <= 24 and cost[c]["generated_tokens"] > 0 for c in conditions)
    assert cost["self_edit:implications"]["generations"] >= 1 and cost["self_edit:spa"]["generations"] >= 2
    records = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    staged = {r["condition"]: r for r in records if r.get("stages")}
    assert staged["self_edit:entigraph"]["stages"][0]["stage"] == "entities"  # every stage in the candidate record
    for r in records:  # an empty self-edit says which stage gave nothing
        if r["condition"].startswith("self_edit:") and r["status"] == "empty_edit" and r.get("stages"):
            assert r["reason"]


def test_a_budget_below_one_document_is_refused_by_the_notebook(tmp_path):
    with pytest.raises(Exception, match="BUDGET 3: budget of 3 tokens is below one document"):
        run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", BUDGET=3)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_rest_em_writes_and_learns_under_each_strategy(tmp_path, strategy):
    metrics = run_notebook("03_rest_em.ipynb", tmp_path, MODEL="tiny", ROUNDS=1, PROMPT=strategy, BUDGET=24)
    written = pd.read_parquet(tmp_path / "round-0" / "self_edits.parquet")
    assert all(len(s) >= 1 and s[0]["stage"] == STRATEGIES[strategy].stages[0].name for s in written.stages)
    assert set(metrics["edit_stats"]) == {"0", "1"}  # diversity per round
    assert all("distinct_n" in s for s in metrics["edit_stats"].values())
    if strategy == "spa":
        rerun_reads_back("03_rest_em.ipynb", tmp_path, MODEL="tiny", ROUNDS=1, PROMPT=strategy, BUDGET=24)


def test_continued_pretraining_pools_a_strategys_self_edits(tmp_path):
    metrics = run_notebook("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", PROMPT="active-reading", BUDGET=24)
    logged = [json.loads(line) for line in (tmp_path / "self_edits.jsonl").read_text().splitlines()]
    assert logged and all(r["stages"][0]["stage"] == "strategies" for r in logged)
    assert "BUDGET: 24" in (tmp_path / "config.yaml").read_text() and metrics["accuracy"]["self_edit"] is not None


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the paper's self-edits are read from the shared reference data")
def test_strategies_and_the_papers_self_edits_are_refused_together(tmp_path):
    with pytest.raises(Exception, match="STRATEGIES compares ways the model writes its own self-edits"):
        run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", DATA="seal-eval",
                     SELF_EDITS="seal-reference:gpt4_1", STRATEGIES=["spa"])
