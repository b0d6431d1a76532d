"""The notebooks, run headless by papermill in smoke mode, as `make demo` and batch users run them."""
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import CHROMIUM

from seal_kit import profiles
from seal_kit.runs import NOTEBOOKS, notebooks
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "seal_reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"SEAL reference data not found at {REFERENCE}; "
                                     "the replay of the paper's self-edits reads its passages, self-edits and verdicts")


def run_notebook(name, run_dir, **parameters):
    papermill.execute_notebook(str(NOTEBOOKS / name), str(run_dir / name), cwd=str(NOTEBOOKS), progress_bar=False,
                               parameters={"SMOKE": True, "RUN_DIR": str(run_dir), **parameters})
    return json.loads((run_dir / "metrics.json").read_text())


def printed(saved: Path) -> str:
    """Everything the saved notebook's cells printed."""
    return "".join(o.get("text", "") for c in nbformat.read(saved, as_version=4).cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")


def rerun_reads_back(name, run_dir, **parameters):
    """Run the notebook again, as before, on its finished run directory: its results are shown again and
    nothing is computed again (no log gains a record), so the metrics are the same."""
    logs = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run_notebook(name, run_dir, **parameters) == metrics
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == logs
    assert "(finished before: its results are read back" in printed(run_dir / name)


def exercise_check(saved: Path) -> str:
    """What the saved notebook's "Try this" check cell printed."""
    cells = [c for c in nbformat.read(saved, as_version=4).cells if "exercise-check" in c.metadata.get("tags", [])]
    assert len(cells) == 1, saved.name
    return "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")


@pytest.mark.slow
def test_quickstart(tmp_path):
    metrics = run_notebook("01_quickstart.ipynb", tmp_path, K=1)
    assert metrics["n_questions"] == 5 and len(metrics["rewards"]) == 1
    assert 0.0 <= metrics["best_reward"] <= 1.0
    for name in ("config.yaml", "baseline.jsonl", "self_edits.jsonl", "candidates.jsonl",
                 "adapter_best/adapter_config.json"):
        assert (tmp_path / name).exists(), name
    # The saved notebook shows its loss curves without re-running: a PNG beside plotly's JSON.
    saved = nbformat.read(tmp_path / "01_quickstart.ipynb", as_version=4)
    figures = [o["data"] for c in saved.cells for o in c.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1
    if CHROMIUM.exists():
        assert figures[0]["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert exercise_check(tmp_path / "01_quickstart.ipynb").startswith("✗ not done yet")
    rerun_reads_back("01_quickstart.ipynb", tmp_path, K=1)


@pytest.mark.slow
def test_knowledge_incorporation(tmp_path):
    metrics = run_notebook("02_knowledge_incorporation.ipynb", tmp_path, K=2, EPOCHS=1)  # the "Try this" change
    assert metrics["n_passages"] == 2 and metrics["n_questions"] == 10
    assert set(metrics["accuracy"]) == {"base", "passage", "self_edit", "self_edit_best"}
    assert all(0.0 <= v <= 1.0 for v in metrics["accuracy"].values())
    assert metrics["accuracy"]["self_edit_best"] >= metrics["accuracy"]["self_edit"]
    for name, condition in metrics["conditions"].items():
        assert condition["ci_low"] <= condition["accuracy"] <= condition["ci_high"], name
        assert condition["paper_all_200"] is None and condition["paper_these_passages"] is None  # built-in passages
    assert set(metrics["accuracy_by_question"]) == set(metrics["accuracy"])
    lines = (tmp_path / "candidates.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 2 * 2  # passage-only + K self-edits, per passage
    check = exercise_check(tmp_path / "02_knowledge_incorporation.ipynb")
    assert check.startswith("✓ every candidate trained for one epoch"), check
    rerun_reads_back("02_knowledge_incorporation.ipynb", tmp_path, K=2, EPOCHS=1)
    with pytest.raises(papermill.PapermillExecutionError, match=r"holds a finished run started with another "
                       r"config\. Changed: inner_loop\.epochs: 1 -> 2\. "):
        run_notebook("02_knowledge_incorporation.ipynb", tmp_path, K=2, EPOCHS=2)


@pytest.mark.slow
def test_knowledge_incorporation_batches_candidates_and_resumes(tmp_path):
    """Two candidates' inner loops train together; an interrupted run scores only what it had not logged."""
    run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", BATCH_CANDIDATES=2)
    log = tmp_path / "candidates.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 2 + 2 * 2
    (tmp_path / "metrics.json").unlink()  # as if stopped before the last candidate was logged
    log.write_text("\n".join(lines[:-1]) + "\n")
    run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", BATCH_CANDIDATES=2)
    again = log.read_text().splitlines()
    assert again[:-1] == lines[:-1] and len(again) == len(lines)  # only the lost candidate was scored again
    key = ("condition", "passage_id", "sample")
    assert [json.loads(again[-1])[k] for k in key] == [json.loads(lines[-1])[k] for k in key]


PAPER_ALL_200 = {"base": 0.3267, "passage": 0.3351, "seal-reference:base": 0.3968, "seal-reference:gpt4_1": 0.4631,
                 "seal-reference:iter2": 0.4699}  # the graded runs' `overall`: Table 2 of the paper


@pytest.mark.slow
@needs_reference
def test_knowledge_incorporation_replays_the_papers_self_edits(tmp_path):
    from seal_kit.data import load_passages
    from seal_kit.reference import load_graded, load_reference_self_edits

    metrics = run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", DATA="seal-eval",
                           SELF_EDITS="seal-reference", K=1)
    passages = load_passages("seal-eval", limit=2)
    assert metrics["n_passages"] == 2 and metrics["n_questions"] == sum(len(p.questions) for p in passages)
    conditions = metrics["conditions"]
    assert list(conditions) == list(PAPER_ALL_200)
    for name, condition in conditions.items():
        assert 0.0 <= condition["ci_low"] <= condition["accuracy"] <= condition["ci_high"] <= 1.0, name
        assert metrics["accuracy"][name] == condition["accuracy"]
        assert condition["paper_all_200"] == PAPER_ALL_200[name]
        assert 0.0 <= condition["paper_these_passages"] <= 1.0
    # The paper on these passages: GPT-4.1's verdicts there, a mean of per-passage means.
    graded = load_graded("iter2")
    here = graded[(graded.kind == "adapter") & graded.passage_id.isin([p.id for p in passages])]
    paper_here = here.groupby("passage_id").reference_correct.mean().mean()
    assert conditions["seal-reference:iter2"]["paper_these_passages"] == pytest.approx(paper_here)
    # One inner loop per passage and condition, on each passage's first self-edit of each set (K=1).
    scored = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    assert len(scored) == 2 * 4 and {r["sample"] for r in scored if r["condition"] != "passage"} == {0}
    first = next(r for r in scored if r["condition"] == "seal-reference:gpt4_1")
    assert first["self_edit"] == load_reference_self_edits("gpt4_1", passages[:1]).self_edit[0]
    rerun_reads_back("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", DATA="seal-eval",
                     SELF_EDITS="seal-reference", K=1)


@pytest.mark.slow
@pytest.mark.parametrize("parameters, message", [
    ({"SELF_EDITS": "seal-reference"}, r"SELF_EDITS='seal-reference' .* but DATA='builtin'\. Set DATA = \"seal-eval\""),
    ({"SELF_EDITS": "seal-reference:gpt5", "DATA": "seal-eval"}, r"no reference set 'gpt5'; choose from base, gpt4_1"),
])
def test_the_papers_self_edits_are_refused_where_they_do_not_apply(tmp_path, parameters, message):
    with pytest.raises(papermill.PapermillExecutionError, match=message):
        run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", **parameters)
    assert not (tmp_path / "config.yaml").exists()  # refused before the run started


def test_the_paper_replay_profile_sets_up_the_replay():
    header = (profiles.FOLDER / "paper-replay.yaml").read_text().splitlines()[:4]
    assert any(line.startswith("# Run:") and "seal-kit run 02 --profile paper-replay" in line for line in header)
    assert profiles.parameters("paper-replay", "02_knowledge_incorporation") == {
        "MODEL": "embedded", "DATA": "seal-eval", "SELF_EDITS": "seal-reference", "K": 1, "N_PASSAGES": 16}
    assert profiles.parameters("paper-replay", "03_rest_em") == {}  # a profile for notebook 02 only


def test_every_notebook_has_a_commented_parameters_cell():
    for path in notebooks():
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, path.name
        lines = [line for line in "".join(tagged[0]["source"]).splitlines() if line.strip()]
        assert all("#" in line for line in lines), f"{path.name}: uncommented parameter"
        names = {re.split(r"[:=]", line)[0].strip() for line in lines}
        assert {"MODEL", "RUN_DIR", "SMOKE", "SEED"} <= names, path.name
        assert set(papermill.inspect_notebook(str(path))) == names, f"{path.name}: papermill cannot parse every parameter"


@pytest.mark.slow
def test_rest_em_headless(tmp_path):
    # ROUNDS=1 comes from the profile; MODEL="tiny" is explicit and wins over the profile's "embedded";
    # the 2 candidates of each passage train together (the batched inner loop)
    metrics = run_notebook("03_rest_em.ipynb", tmp_path, MODEL="tiny", PROFILE="cpu-tiny", BATCH_CANDIDATES=2)
    assert "MODEL: tiny" in (tmp_path / "config.yaml").read_text()
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    assert [r["n_kept"] for r in metrics["rounds"]] == [2, 0]  # best of K for each of the 2 smoke passages
    assert all(0.0 <= r["mean_reward"] <= 1.0 and 0.0 <= r["eval_accuracy"] <= 1.0 for r in metrics["rounds"])
    for name in ("candidates.jsonl", "round-0/kept.jsonl", "round-0/generator/generator/adapter_config.json",
                 "reward_curve.html", "reward_distribution.html", "plotly.min.js"):
        assert (tmp_path / name).exists(), name
    assert exercise_check(tmp_path / "03_rest_em.ipynb").startswith("✗ not done yet")
    rerun_reads_back("03_rest_em.ipynb", tmp_path, MODEL="tiny", PROFILE="cpu-tiny", BATCH_CANDIDATES=2)


@pytest.mark.slow
def test_rest_em_interactive_stops_for_review_and_resumes(tmp_path):
    def run_interactive():
        papermill.execute_notebook(str(NOTEBOOKS / "03_rest_em.ipynb"), str(tmp_path / "03.ipynb"), cwd=str(NOTEBOOKS),
                                   progress_bar=False, parameters={"SMOKE": True, "RUN_DIR": str(tmp_path),
                                                                   "MODEL": "tiny", "ROUNDS": 1, "INTERACTIVE": True})

    run_interactive()
    assert not (tmp_path / "metrics.json").exists()  # waiting for a human, nothing blocked
    assert len((tmp_path / "candidates.jsonl").read_text().splitlines()) == 2 * 2 + 1  # round 0 scored
    # What a click on "accept" writes (the widget itself is tested in test_review.py).
    (tmp_path / "review_decisions.json").write_text(json.dumps([
        {"round": 0, "context_id": "velmora-island", "sample": 1, "decision": "accept", "text": "Edited by hand.",
         "note": "", "updated": ""}]))
    run_interactive()  # the same RUN_DIR: resumes, applies the decision, finishes
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["n_kept"] for r in metrics["rounds"]] == [1, 0]
    assert "Edited by hand." in (tmp_path / "round-0" / "kept.jsonl").read_text()


@pytest.mark.slow
def test_arc_few_shot(tmp_path):
    metrics = run_notebook("04_arc_few_shot.ipynb", tmp_path, MODEL="tiny")
    assert set(metrics["success"]) == {"icl", "ttt_self_edit", "seal", "oracle"}
    assert all(0.0 <= v <= 1.0 for v in metrics["success"].values())
    assert metrics["n_tasks"] == 1 and metrics["n_train_tasks"] == 2
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    oracle = [json.loads(line) for line in (tmp_path / "oracle.jsonl").read_text().splitlines()]
    assert [r["task"] for r in oracle] == ["66e6c45b"] and oracle[0]["status"] == "ok"  # it trained
    scored = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    assert len(scored) == 2 * 2 + 1 + 1  # K per training task, EVAL_K per evaluation task in rounds 0 and 1
    assert all(r["reason"] for r in scored if r["status"] != "ok")  # failed configs say why
    assert (tmp_path / "success.html").exists()
    assert metrics["reference_task_ids"] == ["66e6c45b"]  # the smoke task is one of the 8 the reference scored
    assert metrics["success_by_task_set"]["reference_8"] == metrics["success_by_task_set"]["all"]
    assert metrics["sampling"]["max_attempts"] == 1 and metrics["sampling"]["train"]["draws"] == 2 * 2
    assert exercise_check(tmp_path / "04_arc_few_shot.ipynb").startswith("✗ not done yet")
    rerun_reads_back("04_arc_few_shot.ipynb", tmp_path, MODEL="tiny")


REFERENCE_ARC = dict(GRID_FORMAT="python_lists", AUGMENTATIONS="reference", PERMUTE_EXAMPLES=True,
                     INFERENCE_VIEWS="leave_one_out", VOTING="hierarchical", OVER_BUDGET="untrained", MAX_STEPS=1,
                     TTT_BATCH=2, TTT_SCHEDULE="cosine", TTT_WARMUP=0.1, TTT_CLIP=1.0,
                     TTT_TARGETS="q_proj,v_proj,gate_proj,up_proj,down_proj", TEMPERATURE=0.8, TOP_P=1.0,
                     SAMPLE_ATTEMPTS=3, GENERATOR_RANK=16, GENERATOR_ALPHA=16, GENERATOR_LR=5e-5, GENERATOR_BATCH=5,
                     GENERATOR_SCHEDULE="cosine", GENERATOR_UPDATE="merge")


@pytest.mark.slow
def test_arc_few_shot_the_reference_way(tmp_path):
    metrics = run_notebook("04_arc_few_shot.ipynb", tmp_path, MODEL="tiny", **REFERENCE_ARC)
    # The random tiny model writes no JSON: every config was drawn SAMPLE_ATTEMPTS times, and none parsed.
    for split, count in (("train", 2 * 2), ("eval", 1 + 1)):
        assert metrics["sampling"][split] == {"self_edits": count, "draws": 3 * count, "redrawn": count,
                                              "never_accepted": count, "most_draws": 3}, split
    assert metrics["sampling"]["max_attempts"] == 3
    assert set(metrics["success_by_task_set"]["all"]) == {"icl", "oracle", "ttt_self_edit", "seal",
                                                          "ttt_self_edit_first_draw", "seal_first_draw"}
    # One step is over any config's budget: the oracle trains for 0 epochs and answers as the model is.
    [oracle] = [json.loads(line) for line in (tmp_path / "oracle.jsonl").read_text().splitlines()]
    [icl] = [json.loads(line) for line in (tmp_path / "icl.jsonl").read_text().splitlines()]
    assert oracle["status"] == "empty_edit"
    assert (oracle["reward"], oracle["attempts"]) == (icl["reward"], icl["attempts"])
    saved = (tmp_path / "config.yaml").read_text()
    for line in ("grid_format: python_lists", "voting: hierarchical", "over_budget: untrained", "schedule: cosine",
                 "max_attempts: 3", "update: merge", "- gate_proj"):
        assert line in saved, line
    shown = printed(tmp_path / "04_arc_few_shot.ipynb")  # the test input's prompt: the reference's chat layout
    assert "<|im_start|>system" in shown and "]]#\n" in shown and "]] -> <|im_end|>" in shown


@pytest.mark.slow
def test_continued_pretraining(tmp_path):
    teacher = tmp_path / "teacher.jsonl"  # the teacher condition from a file of edits
    teacher.write_text("".join(json.dumps({"passage_id": pid, "self_edit": f"Facts about {pid} worth knowing."}) + "\n"
                               for pid in ("velmora-island", "thornite")))
    metrics = run_notebook("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", TEACHER=str(teacher))
    assert metrics["n_passages"] == 2
    accuracy = metrics["accuracy"]
    assert list(accuracy) == ["base", "passage", "self_edit", "teacher", "seal"]
    assert accuracy["seal"] is None  # not run: null, not omitted
    assert all(0.0 <= accuracy[k] <= 1.0 for k in ("base", "passage", "self_edit", "teacher"))
    assert metrics["conditions"]["teacher"]["n_documents"] == 2 * 2  # each edit's document + its passage
    assert metrics["conditions"]["base"]["steps"] == 0 < metrics["conditions"]["self_edit"]["steps"]
    assert exercise_check(tmp_path / "05_continued_pretraining.ipynb").startswith("✗ not done yet")
    rerun_reads_back("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", TEACHER=str(teacher))


@pytest.mark.slow
def test_forgetting(tmp_path):
    metrics = run_notebook("06_forgetting.ipynb", tmp_path, MODEL="tiny")
    matrix = metrics["matrix"]
    assert metrics["n_edits"] == 3 and len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert all((v is None) == (j > i) for i, row in enumerate(matrix) for j, v in enumerate(row))
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row if v is not None)
    assert set(metrics["variants"]) == {"merge", "merge+replay2", "route"}
    for name in ("matrix_merge", "matrix_route", "retention"):
        assert (tmp_path / f"{name}.html").exists(), name
    assert exercise_check(tmp_path / "06_forgetting.ipynb").startswith("✗ not done yet")
    rerun_reads_back("06_forgetting.ipynb", tmp_path, MODEL="tiny")
