"""The notebooks' shared parameter comments and setup lines against their one source (seal_kit/cells.py)."""
import json
import shutil

import papermill

from seal_kit import cells
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.paths import notebooks


def parameters_source(path) -> str:
    nb = json.loads(path.read_text())
    return "".join(next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))["source"])


def test_the_committed_notebooks_are_as_generated(capsys):
    assert cells.main(["--check"]) == 0, capsys.readouterr().out


def test_a_run_dir_comment_edited_by_hand_is_caught_and_rewritten(tmp_path, capsys):
    path = tmp_path / "01_quickstart.ipynb"
    shutil.copy(next(p for p in notebooks() if p.stem == "01_quickstart"), path)
    text = path.read_text()
    generated = cells.help_for("RUN_DIR", "01_quickstart")
    assert "<timestamp>-01_quickstart" in generated and generated in text
    path.write_text(text.replace(generated, "this run's directory, as I like to say it"))
    assert cells.main(["--check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "01_quickstart.ipynb cell" in out and "- RUN_DIR" in out and "as I like to say it" in out
    assert cells.main([str(path)]) == 0 and path.read_text() == text  # rewritten as it was
    assert cells.main(["--check", str(path)]) == 0


def test_the_help_comes_from_the_dataclass_field_or_the_table():
    assert cells.help_for("INNER_LR", "02_knowledge_incorporation") == "inner-loop learning rate (paper: 1e-3)"
    assert cells.help_texts()["MAX_LENGTH"] == InnerLoopConfig.__dataclass_fields__["max_length"].metadata["help"]
    assert "local:<model>" in cells.help_for("GRADER", "03_rest_em")
    assert cells.help_for("K", "04_arc_few_shot") is None  # ARC's K: configs per task, its own comment
    assert cells.help_for("N_TRAIN", "03_rest_em") is None  # one notebook's own parameter


def test_generated_lines_parse_with_papermill_as_before(tmp_path):
    """Every shared comment replaced by drift, then generated again: papermill reads the same names and
    defaults as from the committed notebook, with the one source's help."""
    for path in notebooks():
        before = papermill.inspect_notebook(str(path))
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
        lines = "".join(cell["source"]).split("\n")
        for i, line in enumerate(lines):
            split = cells._split(line)
            if split and cells.help_for(cells._name(split[0]), path.stem):
                lines[i] = line[:split[1]] + "# drifted"  # the comment's text replaced, its column kept
        cell["source"] = "\n".join(lines)
        copy = tmp_path / path.name
        copy.write_text(json.dumps(nb))
        assert cells.main([str(copy)]) == 0
        after = papermill.inspect_notebook(str(copy))
        assert [(k, v["default"], v["inferred_type_name"]) for k, v in after.items()] == \
               [(k, v["default"], v["inferred_type_name"]) for k, v in before.items()], path.name
        for name, info in after.items():
            expected = cells.help_for(name, path.stem)
            assert expected is None or info["help"] == expected, (path.name, name)
        assert parameters_source(copy) == parameters_source(path)


def test_the_setup_cell_names_the_run_by_the_notebook_and_shows_what_a_profile_changed():
    for path in notebooks():
        setup = [c for c in json.loads(path.read_text())["cells"]
                 if any(line.startswith(cells.SETUP) for line in "".join(c["source"]).split("\n"))]
        assert len(setup) == 1, path.name
        lines = "".join(setup[0]["source"]).split("\n")
        apply = next(i for i, line in enumerate(lines) if line.startswith(cells.SETUP))
        assert lines[apply + 1] == f'print(profiles.describe(globals(), "{path.stem}"))  # what a profile changed above'
        started = [line for line in lines if "runs.start_run(" in line]
        assert all(f'runs.start_run("{path.stem}", RUN_DIR' in line for line in started), path.name
