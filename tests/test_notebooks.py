"""The notebooks, run headless by papermill in smoke mode, as `make demo` and batch users run them."""
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
import yaml
from conftest import CHROMIUM

from seal_kit.knowledge import edit_stats
from seal_kit import profiles, workshop
from seal_kit.arc.edit import parse_self_edit
from seal_kit.knowledge.data import load_passages
from seal_kit.paths import NOTEBOOKS, notebooks
from seal_kit.self_edit import DocumentConfig, training_documents
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "seal_reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"SEAL reference data not found at {REFERENCE}; "
                                     "the replay of the paper's self-edits reads its passages, self-edits and verdicts")


def student_copy(name, run_dir) -> Path:
    """The students' version of a notebook (`seal-kit notebooks --student`: no solution cells), beside run_dir."""
    copy = run_dir.parent / f"{run_dir.name}-student" / name
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(json.dumps(workshop.student(json.loads((NOTEBOOKS / name).read_text()))))
    return copy


def run_notebook(name, run_dir, instructor=False, **parameters):
    """Run the students' copy of a notebook (the instructor's, solution cells included, with `instructor`)
    headless in smoke mode, from notebooks/ as JupyterLab would."""
    source = NOTEBOOKS / name if instructor else student_copy(name, run_dir)
    papermill.execute_notebook(str(source), str(run_dir / name), cwd=str(NOTEBOOKS), progress_bar=False,
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
    metrics = run_notebook("02_knowledge_incorporation.ipynb", tmp_path, instructor=True, K=2,
                           **workshop.solution("02_knowledge_incorporation"))  # the "Try this" change: EPOCHS 1
    assert metrics["n_passages"] == 2 and metrics["n_questions"] == 10
    assert set(metrics["accuracy"]) == {"base", "passage", "self_edit", "self_edit_best"}
    assert all(0.0 <= v <= 1.0 for v in metrics["accuracy"].values())
    assert metrics["accuracy"]["self_edit_best"] >= metrics["accuracy"]["self_edit"]
    for name, condition in metrics["conditions"].items():
        assert condition["ci_low"] <= condition["accuracy"] <= condition["ci_high"], name
        assert condition["paper_all_200"] is None and condition["paper_these_passages"] is None  # built-in passages
        assert condition["answer_words"] > 0 and 0.0 <= condition["recites_passage"] <= 1.0, name
    assert set(metrics["accuracy_by_question"]) == set(metrics["accuracy"])
    lines = (tmp_path / "candidates.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 2 * 2  # passage-only + K self-edits, per passage
    check = exercise_check(tmp_path / "02_knowledge_incorporation.ipynb")
    assert check.startswith("✓ every candidate trained for one epoch"), check
    assert printed(tmp_path / "02_knowledge_incorporation.ipynb").count("✓ this run is the solved one (EPOCHS = 1)") == 1
    rerun_reads_back("02_knowledge_incorporation.ipynb", tmp_path, K=2, EPOCHS=1)
    with pytest.raises(papermill.PapermillExecutionError, match=r"holds a finished run started with another "
                       r"config\. Changed: inner_loop\.epochs: 1 -> 2\. "):
        run_notebook("02_knowledge_incorporation.ipynb", tmp_path, K=2, EPOCHS=2)


@pytest.mark.slow
def test_knowledge_incorporation_batches_candidates_and_resumes(tmp_path):
    """Two candidates' inner loops train together; an interrupted run scores only what it had not logged.
    With MATCHED_CONTROL each self-edit has a passage-only twin trained for the same steps, and the paired
    gains set each self-edit against both controls. FIRST_PASSAGE=1 holds out the first passage."""
    options = dict(MODEL="tiny", BATCH_CANDIDATES=2, MATCHED_CONTROL=True, FIRST_PASSAGE=1)
    metrics = run_notebook("02_knowledge_incorporation.ipynb", tmp_path, **options)
    log = tmp_path / "candidates.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 2 + 2 * 2 + 2 * 2  # passage-only, the self-edits, their step-matched controls
    rows = [json.loads(line) for line in lines]
    assert {r["passage_id"] for r in rows} == {p.id for p in load_passages("builtin")[1:3]}
    table = pd.read_parquet(tmp_path / "per_passage_accuracy.parquet")
    assert [(g["self-edits"], g["against"]) for g in metrics["paired_gains"]] == [
        ("self_edit", "passage"), ("self_edit", "passage_matched:self_edit")]
    for gain in metrics["paired_gains"]:
        differences = table[gain["self-edits"]] - table[gain["against"]]
        assert gain["gain"] == pytest.approx(differences.mean()) and gain["n_passages"] == 2
        assert gain["ci_low"] <= gain["gain"] <= gain["ci_high"]
    edits = {(r["passage_id"], r["sample"]): r for r in rows if r["condition"] == "self_edit"}
    matched = [r for r in rows if r["condition"] == "passage_matched:self_edit"]
    assert len(matched) == 4 and {r["status"] for r in matched} == {"ok"}
    for r in matched:
        twin = edits[(r["passage_id"], r["sample"])]
        assert r["repeats"] == r["n_examples"] == twin["n_examples"] and r["steps"] == twin["steps"]
    assert list(metrics["accuracy"]) == ["base", "passage", "passage_matched:self_edit", "self_edit", "self_edit_best"]
    (tmp_path / "metrics.json").unlink()  # as if stopped before the last candidate was logged
    log.write_text("\n".join(lines[:-1]) + "\n")
    run_notebook("02_knowledge_incorporation.ipynb", tmp_path, **options)
    again = log.read_text().splitlines()
    assert again[:-1] == lines[:-1] and len(again) == len(lines)  # only the lost candidate was scored again
    key = ("condition", "passage_id", "sample")
    assert [json.loads(again[-1])[k] for k in key] == [json.loads(lines[-1])[k] for k in key]


# Every switch to the reference code's way (seal_kit's defaults differ), at smoke sizes: PAD_TO and MAX_LENGTH
# are the reference's 2048 scaled down to the tiny model.
REFERENCE_SETTINGS = {"CHAT": False, "LAYOUT": "reference", "SPLIT": "reference", "INNER_TARGETS": "q_proj,v_proj",
                      "LR_SCHEDULE": "linear", "MAX_GRAD_NORM": 1.0, "PAD_TO": 64, "MAX_LENGTH": 256}
REFERENCE_INNER_LOOP = {"target_modules": ["q_proj", "v_proj"], "schedule": "linear", "max_grad_norm": 1.0,
                        "pad_to": 64, "max_length": 256}


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_reference_settings_reached(run_dir, passages: dict, edits: list[dict], scored: list[dict]):
    """config.yaml records the switches; the self-edit prompts are plain text in the reference's layout; each
    candidate trained one epoch (the smoke profile's) on its edit split as the reference split it."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["CHAT"], config["LAYOUT"], config["documents"]["split"]) == (False, "reference", "reference")
    assert {k: config["inner_loop"][k] for k in REFERENCE_INNER_LOOP} == REFERENCE_INNER_LOOP
    assert edits and scored
    for edit in edits:
        passage = passages[edit["context_id"]]
        assert edit["prompt"].startswith("Read the following passage"), edit["prompt"]
        assert edit["prompt"].endswith(f"\n\nPassage:\n{passage.title}\n{passage.context}\n\nImplications:\n")
    for row in scored:
        documents = training_documents(row["self_edit"], passages[row["context_id"]], DocumentConfig(split="reference"))
        assert row["n_examples"] == len(documents.texts) and row["steps"] == row["n_examples"]  # batch 1, 1 epoch


@pytest.mark.slow
def test_knowledge_incorporation_with_the_reference_settings(tmp_path):
    run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", K=1, INNER_LR=1e-4, **REFERENCE_SETTINGS)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["inner_loop"]["lr"] == 1e-4
    edits, scored = ([{**r, "context_id": r["passage_id"]} for r in records(tmp_path / f"{name}.jsonl")]
                     for name in ("self_edits", "candidates"))
    assert_reference_settings_reached(tmp_path, {p.id: p for p in load_passages("builtin", limit=2)}, edits,
                                      [r for r in scored if r["condition"] == "self_edit"])


@pytest.mark.slow
@needs_reference
def test_knowledge_incorporation_splits_the_papers_self_edits_as_the_reference_did(tmp_path):
    """The paper's numbered lists are split differently by the two rules: SPLIT decides what is trained on."""
    run_notebook("02_knowledge_incorporation.ipynb", tmp_path, MODEL="tiny", DATA="seal-eval",
                 SELF_EDITS="seal-reference:base", K=1, SPLIT="reference")
    passages = {p.id: p for p in load_passages("seal-eval", limit=2)}
    scored = [r for r in records(tmp_path / "candidates.jsonl") if r["condition"] == "seal-reference:base"]
    counts = {split: [len(training_documents(r["self_edit"], passages[r["passage_id"]], DocumentConfig(split=split))
                          .texts) for r in scored] for split in ("kit", "reference")}
    assert [r["n_examples"] for r in scored] == counts["reference"] != counts["kit"]


@pytest.mark.slow
def test_rest_em_with_the_reference_settings(tmp_path):
    """The paper's protocol at smoke size: held-out passages from another source (EVAL_DATA), the generator
    updated as the reference did (merged, linear schedule, clipped, 2 batches per step)."""
    elsewhere = tmp_path / "held_out.json"  # the held-out passage comes from here, not from DATA
    elsewhere.write_text(json.dumps([{"id": "corvane-ridge", "title": "Corvane Ridge",
                                      "context": "Corvane Ridge rises above the Tesk Valley. Its summit is Mount Oril.",
                                      "questions": [{"question": "What is the summit of Corvane Ridge?",
                                                     "answer": "Mount Oril"}]}]))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    generator = {"grad_accumulation": 2, "schedule": "linear", "max_grad_norm": 1.0, "update": "merge"}
    metrics = run_notebook("03_rest_em.ipynb", run_dir, MODEL="tiny", ROUNDS=1, EVAL_DATA=str(elsewhere),
                           GENERATOR_ACCUMULATION=2, GENERATOR_SCHEDULE="linear", GENERATOR_MAX_GRAD_NORM=1.0,
                           GENERATOR_UPDATE="merge", FINAL_TRAIN=False, **REFERENCE_SETTINGS)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["EVAL_DATA"] == str(elsewhere)
    assert {k: config["rest_em"]["generator"][k] for k in generator} == generator
    train = load_passages("builtin", limit=2)  # N_TRAIN = 2 from DATA, N_EVAL = 1 from EVAL_DATA
    contexts = json.loads((run_dir / "contexts.json").read_text())
    assert contexts["train"] == [p.id for p in train] and contexts["held_out"] == ["corvane-ridge"]
    scored = records(run_dir / "candidates.jsonl")
    assert {r["context_id"] for r in scored if r["split"] == "eval"} == {"corvane-ridge"}
    assert {r["round"] for r in scored if r["split"] == "train"} == {0}  # FINAL_TRAIN False: round 1 held-out only
    held_out = {r["round"]: r for r in metrics["held_out_accuracy"]}
    assert sorted(held_out) == [0, 1] and held_out[1]["n_passages"] == 1
    assert held_out[1]["gain_over_round_0"] == pytest.approx(held_out[1]["accuracy"] - held_out[0]["accuracy"])
    assert_reference_settings_reached(run_dir, {p.id: p for p in train + load_passages(str(elsewhere))},
                                      records(run_dir / "round-0/self_edits.jsonl")
                                      + records(run_dir / "round-1/self_edits.jsonl"), scored)
    # Round 0 kept 2 pairs (best of K per passage), one generator epoch: 2 batches of 1, summed into 1 step.
    assert metrics["rounds"][0]["n_kept"] == 2
    assert len(json.loads((run_dir / "round-0" / "generator_losses.json").read_text())) == 1


@pytest.mark.slow
@needs_reference
def test_rest_em_warm_started_from_the_papers_kept_edits_with_controls(tmp_path):
    """GENERATOR_WARM_START: round 0 scores the untrained generator on held-out seal-eval passages, the generator
    is trained on the paper's round-0 kept edits (no training passages of its own), round 1 scores it again;
    CONTROLS sets each held-out edit against the passage once and for the same steps, paired per passage."""
    metrics = run_notebook("03_rest_em.ipynb", tmp_path, MODEL="tiny", DATA="seal-train", EVAL_DATA="seal-eval",
                           N_TRAIN=0, N_EVAL=2, ROUNDS=1, FINAL_TRAIN=False, CONTROLS=True,
                           GENERATOR_WARM_START="seal-reference:sft0")
    kept = pd.read_parquet(tmp_path / "round-0" / "kept.parquet")
    assert len(kept) == 50 and kept.context_id.str.startswith("seal-train-").all()  # the paper's 50 kept edits
    assert metrics["rounds"][0]["warm_start"] and metrics["rounds"][0]["n_candidates"] == 0
    scored = records(tmp_path / "candidates.jsonl")
    assert {r["split"] for r in scored} == {"eval"} and len(scored) == 2 * 2  # 2 held-out passages x 2 rounds
    controls = records(tmp_path / "controls.jsonl")
    assert sorted((c["condition"], c["passage_id"]) for c in controls) == sorted(
        [("passage", p) for p in ("seal-eval-000", "seal-eval-001")]
        + [(f"passage_matched:round-{r['round']}", r["context_id"]) for r in scored])
    for c in controls:  # the step-matched control trains for as many documents as its edit gave
        if c["condition"] != "passage":
            edit = next(r for r in scored if f"round-{r['round']}" == c["condition"].split(":")[1]
                        and r["context_id"] == c["passage_id"])
            assert c["n_examples"] == len(edit["documents"])
    table = pd.read_parquet(tmp_path / "held_out_controls.parquet").set_index("passage_id")
    by_round = {(g["round"], g["against"]): g for g in metrics["controls"]}
    assert sorted(by_round) == [(0, "passage"), (0, "passage_matched:round-0"), (1, "passage"),
                                (1, "passage_matched:round-1")]
    for (r, against), g in by_round.items():
        assert g["gain"] == pytest.approx((table[f"round-{r}"] - table[against]).mean()) and g["n_passages"] == 2
    # each round's held-out edits described alike: before and after the warm start, on the same 2 passages
    assert sorted(metrics["edit_stats"]) == ["0", "1"] and {s["n_edits"] for s in metrics["edit_stats"].values()} == {2}
    for r, stats in metrics["edit_stats"].items():
        edits = [x["self_edit"] for x in scored if x["round"] == int(r)]
        assert stats["distinct_n"] == pytest.approx(edit_stats.distinct_n(edits), nan_ok=True)
    rerun_reads_back("03_rest_em.ipynb", tmp_path, MODEL="tiny", DATA="seal-train", EVAL_DATA="seal-eval",
                     N_TRAIN=0, N_EVAL=2, ROUNDS=1, FINAL_TRAIN=False, CONTROLS=True,
                     GENERATOR_WARM_START="seal-reference:sft0")


PAPER_ALL_200 = {"base": 0.3267, "passage": 0.3351, "seal-reference:base": 0.3968, "seal-reference:gpt4_1": 0.4631,
                 "seal-reference:iter2": 0.4699}  # the graded runs' `overall`: Table 2 of the paper


@pytest.mark.slow
@needs_reference
def test_knowledge_incorporation_replays_the_papers_self_edits(tmp_path):
    from seal_kit.knowledge.data import load_passages
    from seal_kit.knowledge.reference import load_graded, load_reference_self_edits

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


NO_MODEL = {"00_papers_evidence"}  # reads the paper's published data only: no MODEL to choose


def test_every_notebook_has_a_commented_parameters_cell():
    for path in notebooks():
        cells = json.loads(path.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, path.name
        lines = [line for line in "".join(tagged[0]["source"]).splitlines()  # comment lines head groups (03)
                 if line.strip() and not line.lstrip().startswith("#")]
        assert all("#" in line for line in lines), f"{path.name}: uncommented parameter"
        names = {re.split(r"[:=]", line)[0].strip() for line in lines}
        required = {"RUN_DIR", "SMOKE", "SEED"} | (set() if path.stem in NO_MODEL else {"MODEL"})
        assert required <= names, path.name
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
    intervals = {r["method"]: r for r in metrics["success_intervals"]}
    assert set(intervals) == {"icl", "ttt_self_edit", "seal", "oracle"}
    assert all(r["low"] <= metrics["success"][m] <= r["high"] and r["n_tasks"] == 1 for m, r in intervals.items())
    assert intervals["icl"]["valid_configs"] is None and intervals["ttt_self_edit"]["valid_configs"] == 0.0
    assert exercise_check(tmp_path / "04_arc_few_shot.ipynb").startswith("✗ not done yet")
    rerun_reads_back("04_arc_few_shot.ipynb", tmp_path, MODEL="tiny")


@pytest.mark.slow
def test_arc_few_shot_constrained_decoding_gives_even_a_random_model_valid_configs(tmp_path):
    """Unconstrained, the random tiny model's configs never parse (the test above); under the schema they do,
    unless a config runs out of tokens; provenance.json names the model of the run."""
    metrics = run_notebook("04_arc_few_shot.ipynb", tmp_path, MODEL="tiny", CONSTRAINED=True, MAX_NEW_TOKENS=200)
    scored = [json.loads(line) for line in (tmp_path / "candidates.jsonl").read_text().splitlines()]
    edits = pd.read_parquet(tmp_path / "round-0" / "self_edits.parquet")
    assert metrics["sampling"]["constrained"] is True
    assert any(r["status"] != "bad_json" for r in scored)
    assert all(tokens == 200 for tokens, text in zip(edits.tokens, edits.self_edit)
               if parse_self_edit(text).status == "bad_json")  # only a config cut short fails to parse
    sessions = json.loads((tmp_path / "provenance.json").read_text())["sessions"]
    assert sessions[0]["model"]["parameters"] > 0 and sessions[0]["versions"]["seal-kit"]


REFERENCE_ARC = dict(GRID_FORMAT="python_lists", AUGMENTATIONS="reference", PERMUTE_EXAMPLES=True,
                     INFERENCE_VIEWS="leave_one_out", VOTING="hierarchical", OVER_BUDGET="untrained", MAX_STEPS=1,
                     BATCH_SIZE=2, LR_SCHEDULE="cosine", WARMUP_RATIO=0.1, MAX_GRAD_NORM=1.0,
                     INNER_TARGETS="q_proj,v_proj,gate_proj,up_proj,down_proj", TEMPERATURE=0.8, TOP_P=1.0,
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
    paper_mode = dict(SPLIT_LINES=False, BATCH_SIZE=2, ACCUMULATION=2, PASSAGE_LR=1e-4, LAYOUT="reference",
                      SPLIT="reference", LR_SCHEDULE="linear", MAX_GRAD_NORM=1.0)  # the reference's CPT, mostly
    metrics = run_notebook("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", TEACHER=str(teacher), **paper_mode)
    assert metrics["n_passages"] == 2
    accuracy = metrics["accuracy"]
    assert list(accuracy) == ["base", "passage", "self_edit", "teacher", "seal"]
    assert accuracy["seal"] is None  # not run: null, not omitted
    assert all(0.0 <= accuracy[k] <= 1.0 for k in ("base", "passage", "self_edit", "teacher"))
    conditions = metrics["conditions"]
    assert conditions["teacher"]["n_documents"] == 2 * 2  # each edit whole, then its passage
    assert conditions["base"]["steps"] == 0 < conditions["self_edit"]["steps"]
    for name, condition in conditions.items():  # 2 x 2 documents per step, one epoch (smoke)
        assert condition["steps"] == -(-condition["n_documents"] // 4), name
    assert [conditions[k]["lr"] for k in ("base", "passage", "self_edit", "teacher")] == [None, 1e-4, 1e-3, 1e-3]
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["PASSAGE_LR"] == 1e-4 and config["LAYOUT"] == "reference"
    assert (config["documents"]["split_lines"], config["documents"]["split"]) == (False, "reference")
    assert (config["inner_loop"]["batch_size"], config["inner_loop"]["grad_accumulation"]) == (2, 2)
    prompts = [json.loads(line)["prompt"] for line in (tmp_path / "self_edits.jsonl").read_text().splitlines()]
    assert len(prompts) == 2 * 2 and all("\n\nPassage:\n" in p for p in prompts)  # the reference's layout
    assert exercise_check(tmp_path / "05_continued_pretraining.ipynb").startswith("✗ not done yet")
    rerun_reads_back("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", TEACHER=str(teacher), **paper_mode)


@pytest.mark.slow
@needs_reference
def test_continued_pretraining_with_the_papers_gpt4_1_edits_as_teacher(tmp_path):
    metrics = run_notebook("05_continued_pretraining.ipynb", tmp_path, MODEL="tiny", DATA="seal-eval", N_PASSAGES=1,
                           K=2, TEACHER="seal-reference:gpt4_1")
    from seal_kit.knowledge.reference import load_reference_self_edits

    theirs = load_reference_self_edits("gpt4_1", ["seal-eval-000"])
    logged = [json.loads(line) for line in (tmp_path / "self_edits.jsonl").read_text().splitlines()]
    teacher = [r["self_edit"] for r in logged if r["source"] == "teacher"]
    assert teacher == list(theirs.self_edit[:2])  # the paper's first K edits of that passage, as published
    assert metrics["accuracy"]["teacher"] is not None


@pytest.mark.slow
def test_forgetting(tmp_path):
    # edits written as the sequence goes, two sequences averaged; replay left to the unit tests, to keep this short
    paper_mode = dict(EDITS_FROM="current", SEQUENCES=2, MITIGATIONS=["route"])
    metrics = run_notebook("06_forgetting.ipynb", tmp_path, MODEL="tiny", **paper_mode)
    matrix = metrics["matrix"]
    assert metrics["n_edits"] == 3 and len(matrix) == 1 + 3 and all(len(row) == 3 for row in matrix)
    assert all((v is None) == (j >= i > 0) for i, row in enumerate(matrix) for j, v in enumerate(row))  # row 0: base
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row if v is not None)
    assert set(metrics["variants"]) == {"merge", "route"}
    first, second = metrics["sequences"]
    assert first == ["velmora-island", "thornite", "quillback-marmot"] and second != first and len(set(second)) == 3
    for variant in metrics["variants"].values():  # each cell: the mean (and spread) of the two sequences' cells
        one, two = variant["per_sequence"]
        mean, spread = variant["matrix"], variant["spread"]
        for i in range(4):
            for j in range(3):
                if one[i][j] is not None:
                    assert mean[i][j] == pytest.approx((one[i][j] + two[i][j]) / 2)
                    assert spread[i][j] == pytest.approx(abs(one[i][j] - two[i][j]) / 2 ** 0.5)
    assert not (tmp_path / "self_edits.jsonl").exists()  # none written up front
    records = [json.loads(line) for line in (tmp_path / "variants.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 and all(len(r["steps"]) == 3 and all(isinstance(s["self_edit"], str) for s in r["steps"])
                                         for r in records)
    for name in ("matrix_merge", "matrix_route", "retention"):
        assert (tmp_path / f"{name}.html").exists(), name
    assert exercise_check(tmp_path / "06_forgetting.ipynb").startswith("✗ not done yet")
    rerun_reads_back("06_forgetting.ipynb", tmp_path, MODEL="tiny", **paper_mode)

@pytest.mark.slow
def test_a_resume_onto_data_edited_since_is_refused(tmp_path):
    """DATA edited between a crash and the resume (same path, other text): refused, naming the passage,
    before anything is scored on the mixture."""
    data = tmp_path / "mine.json"
    item = {"id": "tesk-valley", "title": "Tesk Valley", "context": "The Tesk Valley's river is the Orl.",
            "questions": [{"question": "What is the Tesk Valley's river?", "answer": "the Orl"}]}
    data.write_text(json.dumps([item]))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_notebook("02_knowledge_incorporation.ipynb", run_dir, MODEL="tiny", DATA=str(data), K=1)
    data.write_text(json.dumps([{**item, "context": "The Tesk Valley's river is the Vane."}]))
    logs = {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")}
    with pytest.raises(papermill.PapermillExecutionError, match=r"Changed: data\.tesk-valley: "):
        run_notebook("02_knowledge_incorporation.ipynb", run_dir, MODEL="tiny", DATA=str(data), K=1)
    assert {p: p.read_bytes() for p in run_dir.rglob("*.jsonl")} == logs


@pytest.mark.slow
def test_the_inner_loop_map_runs_its_points_and_plots_them(tmp_path):
    """Smoke: two inner-loop settings on the tiny model, run from the notebook into its folder, then read;
    the runs have the step-matched control (the smoke profile's MATCHED_CONTROL)."""
    papermill.execute_notebook(str(NOTEBOOKS / "07_inner_loop_map.ipynb"), str(tmp_path / "07.ipynb"), cwd=str(NOTEBOOKS),
                               progress_bar=False, parameters={"SMOKE": True, "RUN_DIR": str(tmp_path / "map")})
    summary = pd.read_csv(tmp_path / "map" / "map_summary.csv")
    assert sorted(set(summary.setting)) == ["builtin, lr 0.0001", "builtin, lr 0.001"]
    assert list(summary.condition[:4]) == ["base", "passage", "passage, own self-edit's steps", "own self-edit"]
    assert (summary.ci_low <= summary.accuracy).all() and (summary.accuracy <= summary.ci_high).all()
    assert (summary.n_passages == 2).all() and summary.gain_over_passage.notna().sum() == 2 * 2  # edit, matched
    assert summary.gain_over_matched.notna().sum() == 2  # the own self-edit against its step-matched passage
    assert (tmp_path / "map" / "map.html").exists()
    runs_there = sorted(p.name.split("-")[0] for p in (tmp_path / "map").iterdir() if p.is_dir())
    assert len(runs_there) == 2 and all((p / "metrics.json").exists() for p in (tmp_path / "map").iterdir() if p.is_dir())


@pytest.mark.slow
@needs_reference
def test_the_papers_evidence(tmp_path):
    """Smoke: the first 20 of the paper's passages. The prompt x RL table must be GPT-4.1's verdicts averaged per
    passage, as computed here straight from the graded files; the rest of metrics.json has its shape."""
    from seal_kit.knowledge.reference import PROMPT_SETS, PROMPTS, load_graded, load_reference_passages

    metrics = run_notebook("00_papers_evidence.ipynb", tmp_path)
    ids = [p.id for p in load_reference_passages("seal-eval")[:20]]

    def accuracy(name, kind):  # per passage: the share of its questions GPT-4.1 judged correct
        graded = load_graded(name)
        return graded[(graded.kind == kind) & graded.passage_id.isin(ids)].groupby("passage_id").reference_correct.mean()

    assert metrics["n_passages"] == 20 and metrics["n_questions"] == 88
    assert list(metrics["prompt_rl"]) == list(PROMPTS) == ["implications", "implications-long",
                                                           "implications-very-long", "rewrite", "self-qa"]
    for prompt, row in metrics["prompt_rl"].items():
        before, after = accuracy(PROMPT_SETS[prompt, "base"], "adapter"), accuracy(PROMPT_SETS[prompt, "iter2"], "adapter")
        assert len(before) == len(after) == row["n_passages"] == 20, prompt
        assert row["before"] == pytest.approx(before.mean()) and row["after"] == pytest.approx(after.mean()), prompt
        assert row["gain"] == pytest.approx((after - before).mean()) == pytest.approx(row["after"] - row["before"])
        assert len(row["gain_ci"]) == 2 and row["gain_ci"][0] <= row["gain"] <= row["gain_ci"][1], prompt
        assert row["before_ci"][0] <= row["before"] <= row["before_ci"][1] and 0.0 <= row["after"] <= 1.0
        assert row["baseline_before"] == pytest.approx(accuracy(PROMPT_SETS[prompt, "base"], "baseline").mean())
    sets = list(PROMPT_SETS.values())
    assert list(metrics["edit_stats"]) == list(metrics["edit_stats_judged"]) == list(metrics["agreement"]) == sets
    iter2 = metrics["edit_stats"]["iter2"]
    assert (iter2["n_edits"], iter2["n_passages"], iter2["prompt"], iter2["round"]) == (100, 20, "implications", "iter2")
    assert metrics["edit_stats"]["implications-very-long-base"]["n_edits"] == 20  # one published edit per passage
    assert metrics["edit_stats_judged"]["rewrite-iter2"]["n_edits"] == 20
    assert all(0 < s["distinct_n"] <= 1 and s["compression_ratio"] > 1 and 0 <= s["grounding"] <= 1
               for s in metrics["edit_stats"].values())
    assert all(0.5 < a["agreement"] <= 1 and a["n"] == 2 * 88 for a in metrics["agreement"].values())
    assert set(metrics["collapse_warnings"]) == set(PROMPTS)
    for name in ("prompt_rl.jsonl", "edit_stats.parquet", "agreement.jsonl", "prompt_rl.html", "edit_stats.html"):
        assert (tmp_path / name).exists(), name
    assert exercise_check(tmp_path / "00_papers_evidence.ipynb").startswith("✗ not done yet")
    rerun_reads_back("00_papers_evidence.ipynb", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_knowledge_incorporation.ipynb"])
def test_the_first_lessons_run_in_bf16_on_a_cpu(tmp_path, name):
    """DTYPE="bfloat16" end to end on the CPU (the tiny model: this CPU may lack bf16 units), so a dtype bug a
    GPU user would hit shows in CI; the run records its dtype."""
    metrics = run_notebook(name, tmp_path, MODEL="tiny", DTYPE="bfloat16", K=1)
    assert all(0.0 <= v <= 1.0 for v in metrics.get("accuracy", {"best": metrics.get("best_reward", 0.0)}).values())
    sessions = json.loads((tmp_path / "provenance.json").read_text())["sessions"]
    assert sessions[-1]["model"]["dtype"] == "bfloat16"
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["DTYPE"] == "bfloat16"
