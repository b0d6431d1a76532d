"""Run profiles: loading, per-notebook parameters, unknown keys, explicit values winning, smoke."""
import json

import pytest

from seal_kit import profiles


def test_the_profiles_load_and_name_their_command():
    assert profiles.names() == ["cpu-tiny", "gpu-small", "paper", "paper-improved", "paper-replay", "smoke", "workshop"]
    for name in profiles.names():
        spec = profiles.load(name)
        header = (profiles.FOLDER / f"{name}.yaml").read_text().splitlines()[:4]
        assert any(line.startswith("# Run:") and f"--profile {name}" in line for line in header), name
        assert spec["description"]


def test_parameters_per_notebook():
    assert profiles.parameters("paper", "04_arc_few_shot")["MODEL"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert profiles.parameters("paper", "03_rest_em")["MODEL"] == "Qwen/Qwen2.5-7B"
    small = profiles.parameters("gpu-small", "04_arc_few_shot")
    assert small["MODEL"] == "Qwen/Qwen2.5-0.5B-Instruct" and "DATA" not in small  # 04 has no DATA parameter


def test_profiles_name_their_data_never_a_path_into_this_repositorys_surroundings():
    from seal_kit.knowledge.data import BUILTIN, REFERENCE_SETS

    for name in profiles.names():
        for notebook in ("02_knowledge_incorporation", "03_rest_em", "05_continued_pretraining", "06_forgetting"):
            values = profiles.parameters(name, notebook)
            for key in ("DATA", "EVAL_DATA"):
                if values.get(key) is not None:
                    assert values[key] in (BUILTIN, "squad", *REFERENCE_SETS), (name, notebook, key, values[key])


@pytest.mark.parametrize("text, message", [
    ("parameter: {K: 1}\n", "unknown key 'parameter'"),
    ("parameters: {KK: 1}\n", "parameter 'KK' is in no notebook"),
    ("notebooks: {99_x: {K: 1}}\n", "unknown notebook '99_x'"),
    ("notebooks: {04_arc_few_shot: {EPOCHS: 3}}\n", "04_arc_few_shot has no parameter 'EPOCHS'"),
])
def test_unknown_keys_are_named(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        profiles.load(path)
    with pytest.raises(ValueError, match="unknown profile 'nope'.*cpu-tiny"):
        profiles.load("nope")


def test_a_misspelled_parameter_in_a_profile_names_the_nearest_as_p_does(tmp_path, capsys):
    """A profile's typo is named with the nearest known parameter (the helper `-p` uses), not answered with
    the list of every parameter of every notebook."""
    from seal_kit.cli import main

    path = tmp_path / "mine.yaml"
    path.write_text("parameters: {EPOHCS: 3}\n")
    with pytest.raises(ValueError) as err:
        profiles.load(path)
    assert str(err.value) == "profile mine.yaml: parameter 'EPOHCS' is in no notebook; did you mean 'EPOCHS'?"
    path.write_text("notebooks: {03_rest_em: {round: 2}}\n")
    with pytest.raises(ValueError) as err:
        profiles.load(path)
    assert str(err.value) == "profile mine.yaml: 03_rest_em has no parameter 'round'; did you mean 'ROUNDS'?"
    assert main(["run", "03", "--profile", str(path), "--run-dir", str(tmp_path / "r")]) == 2
    assert "did you mean 'ROUNDS'?" in capsys.readouterr().err and not (tmp_path / "r").exists()
    path.write_text("parameters: {ZZZZZZ: 3}\n")  # nothing near: what is known, as before
    with pytest.raises(ValueError, match="parameter 'ZZZZZZ' is in no notebook; known: .*EPOCHS"):
        profiles.load(path)
    assert profiles.nearest("k", ["K", "KK"]) == "K" and profiles.nearest("zzz", ["K"]) is None


def test_apply_fills_defaults_and_keeps_explicit_values():
    namespace = dict(profiles.notebook_defaults("03_rest_em"))
    namespace["K"] = 7  # given explicitly (papermill -p, or edited in the cell)
    changed = profiles.apply("cpu-tiny", namespace, "03_rest_em")
    assert namespace["K"] == 7 and "K" not in changed
    assert namespace["N_TRAIN"] == 3 and namespace["ROUNDS"] == 1 and changed["N_EVAL"] == 3
    assert profiles.apply(None, namespace, "03_rest_em") == {}


def test_smoke_is_a_profile_under_explicit_values_and_over_the_others():
    namespace = dict(profiles.notebook_defaults("03_rest_em"), K=0, SMOKE=True)  # K=0 given explicitly
    changed = profiles.apply("cpu-tiny", namespace, "03_rest_em", smoke=namespace["SMOKE"])
    assert namespace["K"] == 0 and "K" not in changed  # seen by the notebook, which then refuses it
    assert namespace["N_TRAIN"] == 2 and namespace["N_EVAL"] == 1  # smoke's, over cpu-tiny's 3 and 3
    assert namespace["ROUNDS"] == 1 and namespace["ANSWER_TOKENS"] == 8  # cpu-tiny's where smoke says nothing
    arc = dict(profiles.notebook_defaults("04_arc_few_shot"), TASKS="ragged.json")
    profiles.apply(None, arc, "04_arc_few_shot", smoke=True)
    assert arc["TASKS"] == "ragged.json" and arc["TRAIN_TASKS"] == ["6150a2bd", "5582e5ca"] and arc["VIEWS"] == 2


def test_every_notebook_has_smoke_values_and_reads_smoke_only_through_the_profile():
    from seal_kit.paths import notebooks

    for path in notebooks():
        assert profiles.parameters("smoke", path.stem), path.stem
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        reads = [line for c in code if "parameters" not in c["metadata"].get("tags", [])
                 for line in "".join(c["source"]).splitlines() if "SMOKE" in line]
        assert reads == [f'profiles.apply(PROFILE, globals(), "{path.stem}", smoke=SMOKE)  '
                         "# before anything reads the parameters"], path.stem


def test_empty_sections_are_allowed(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("description: nothing\nparameters:\nnotebooks:\n")
    assert profiles.parameters(path, "03_rest_em") == {}


def test_show_prints_every_parameter_with_the_profile_values_as_yaml(capsys):
    import yaml

    from seal_kit.cli import main

    assert main(["profiles", "show", "cpu-tiny", "03"]) == 0
    text = capsys.readouterr().out
    values = yaml.safe_load(text)
    defaults = profiles.notebook_defaults("03_rest_em")
    assert list(values) == list(defaults)  # every parameter, in the notebook's order
    assert values == {**defaults, **profiles.parameters("cpu-tiny", "03_rest_em")}
    marked = {line.split(":")[0] for line in text.splitlines() if "# profile" in line}
    assert marked == {k for k, v in profiles.parameters("cpu-tiny", "03_rest_em").items() if v != defaults[k]}
    assert main(["profiles"]) == 0 and "paper-replay" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["profiles", "show", "paper"])  # no notebook named
    assert main(["profiles", "show", "nonesuch", "03"]) == 2
    assert "unknown profile 'nonesuch'" in capsys.readouterr().err


# The differences from the reference (README table): the `paper` profile turns each to the reference's value,
# `paper-improved` leaves each at the kit's default; both share the paper's models, data and sizes.
KNOWLEDGE_SWITCHES = ["CHAT", "LAYOUT", "SPLIT", "INNER_TARGETS", "LR_SCHEDULE", "MAX_GRAD_NORM", "PAD_TO", "MAX_LENGTH",
                      "GRADER"]
SWITCHES = {
    "02_knowledge_incorporation": KNOWLEDGE_SWITCHES,
    "03_rest_em": KNOWLEDGE_SWITCHES + ["GENERATOR_ACCUMULATION", "GENERATOR_SCHEDULE", "GENERATOR_MAX_GRAD_NORM",
                                        "GENERATOR_UPDATE"],
    "04_arc_few_shot": ["TEMPERATURE", "TOP_P", "SAMPLE_ATTEMPTS", "GRID_FORMAT", "AUGMENTATIONS", "PERMUTE_EXAMPLES",
                        "INFERENCE_VIEWS", "VOTING", "OVER_BUDGET", "BATCH_SIZE", "LR_SCHEDULE", "WARMUP_RATIO",
                        "MAX_GRAD_NORM", "INNER_TARGETS", "GENERATOR_RANK", "GENERATOR_ALPHA", "GENERATOR_LR",
                        "GENERATOR_EPOCHS", "GENERATOR_BATCH", "GENERATOR_SCHEDULE", "GENERATOR_UPDATE"],
    "05_continued_pretraining": KNOWLEDGE_SWITCHES + ["BATCH_SIZE", "ACCUMULATION", "PASSAGE_LR", "SPLIT_LINES"],
    "06_forgetting": KNOWLEDGE_SWITCHES + ["EDITS_FROM"],
}


@pytest.mark.parametrize("notebook", sorted(SWITCHES))
def test_paper_sets_every_switch_and_paper_improved_none_with_the_same_sizes(notebook):
    defaults = profiles.notebook_defaults(notebook)
    paper, improved = profiles.parameters("paper", notebook), profiles.parameters("paper-improved", notebook)
    for name in SWITCHES[notebook]:
        assert name in defaults, name
        assert paper.get(name, defaults[name]) != defaults[name], f"paper leaves {name} at the kit's default"
        assert name not in improved, f"paper-improved changes {name}"
    for name, value in improved.items():  # everything else paper-improved sets, paper sets alike
        assert paper.get(name) == value, name
    assert paper["MODEL"] == improved["MODEL"] != defaults["MODEL"]


def test_a_finished_run_given_alone_sets_the_parameters_it_was_made_with(tmp_path, capsys):
    """Only RUN_DIR set (every other parameter at its default) on a finished headless run: its recorded
    parameters are applied, so Run All shows that run; any other value given keeps the usual path."""
    (tmp_path / "execution.json").write_text(json.dumps({"seconds": 1.0, "parameters": {"K": 2, "EPOCHS": 1,
                                                                                         "RUN_DIR": "/elsewhere"}}))
    (tmp_path / "metrics.json").write_text("{}")
    defaults = profiles.notebook_defaults("01_quickstart")
    namespace = {**defaults, "RUN_DIR": str(tmp_path)}
    assert profiles.apply(None, namespace, "01_quickstart") == {"K": 2, "EPOCHS": 1}
    assert namespace["K"] == 2 and namespace["EPOCHS"] == 1 and namespace["RUN_DIR"] == str(tmp_path)
    assert "holds a finished run: shown with its own parameters (K=2, EPOCHS=1)" in capsys.readouterr().out
    changed = {**defaults, "RUN_DIR": str(tmp_path), "PROMPT": "self-qa"}  # a value of one's own: not adopted
    assert profiles.apply(None, changed, "01_quickstart") == {} and changed["K"] == defaults["K"]
    (tmp_path / "metrics.json").unlink()  # unfinished: nothing to show
    fresh = {**defaults, "RUN_DIR": str(tmp_path)}
    assert profiles.apply(None, fresh, "01_quickstart") == {} and fresh["K"] == defaults["K"]


def test_describe_names_what_a_profile_changed_and_what_was_set_otherwise():
    defaults = profiles.notebook_defaults("03_rest_em")
    assert profiles.describe(dict(defaults), "03_rest_em") == "no profile: the values above"
    namespace = {**defaults, "PROFILE": "workshop", "RUN_DIR": "/somewhere"}
    profiles.apply("workshop", namespace, "03_rest_em")
    line = profiles.describe(namespace, "03_rest_em")
    assert line.startswith("profile workshop: ") and "K 3 -> 2" in line and "EPOCHS 10 -> 5" in line
    assert "RUN_DIR" not in line and "given to this run" not in line
    assert ("K", 3, 2) in profiles.changes(namespace, "03_rest_em")
    namespace["SEED"] = 4  # given by papermill -p, say
    assert profiles.describe(namespace, "03_rest_em").endswith("; given to this run: SEED 0 -> 4")
    assert profiles.describe({**defaults, "K": 4}, "03_rest_em") == "no profile in this notebook; given to this run: K 3 -> 4"
    evidence = {**profiles.notebook_defaults("00_papers_evidence"), "PROFILE": "workshop"}
    profiles.apply("workshop", evidence, "00_papers_evidence")
    assert profiles.describe(evidence, "00_papers_evidence") == "profile workshop: changes nothing here, the values above"
