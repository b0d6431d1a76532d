import hashlib
import http.server
import json
import random
import shutil
import socket
import threading
from functools import partial
from pathlib import Path

import pytest

from seal_kit.knowledge import reference, reference_files
from seal_kit.knowledge.data import DataError, load_passages
from seal_kit.knowledge.reference import (ReferenceUnavailable, load_graded, load_reference_passages,
                                load_reference_self_edits, load_sft, reference_file)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = SHARED / "seal_reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"SEAL reference data not found at {REFERENCE}")


@pytest.fixture
def shared_copy(monkeypatch, tmp_path):
    """Read the shared copy through $SEAL_KIT_REFERENCE; an empty cache proves nothing is downloaded."""
    monkeypatch.setenv("SEAL_KIT_REFERENCE", str(REFERENCE))
    monkeypatch.setenv("SEAL_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEAL_KIT_REFERENCE_URL", "http://127.0.0.1:9/unreachable")


@needs_reference
@pytest.mark.skipif(not (SHARED / "squad" / "squad_val.json").exists(), reason="shared SQuAD dev set not found")
def test_seal_eval_is_squad_dev_shuffled_with_seed_42(shared_copy):
    items = json.loads((SHARED / "squad" / "squad_val.json").read_text(encoding="utf-8"))
    random.seed(42)
    random.shuffle(items)
    passages = load_passages("seal-eval")
    assert [(p.title, p.context) for p in passages] == [(it["title"], it["context"]) for it in items[:200]]
    assert [p.id for p in passages] == [f"seal-eval-{i:03d}" for i in range(200)]
    assert sum(len(p.questions) for p in passages) == 974


@needs_reference
def test_seal_train_holds_both_rounds_disjoint_from_eval(shared_copy):
    train = load_passages("seal-train")
    assert [p.id for p in train] == [f"seal-train-{i:03d}" for i in range(150)]
    assert len({p.context for p in train}) == 150  # round 1's 50 passages are not round 0's
    assert not {p.context for p in train} & {p.context for p in load_reference_passages("seal-eval")}
    assert len(load_passages("seal-train", limit=3)) == 3
    with pytest.raises(DataError, match="accepted: 'seal-eval'"):
        load_reference_passages("seal-test")


@needs_reference
def test_self_edits_have_generate_self_edits_shape_and_passage_ids(shared_copy, monkeypatch):
    from seal_kit import self_edit, strategies
    from seal_kit.generation import Generation

    monkeypatch.setattr(self_edit, "generate_with", lambda *a, **kw: [Generation("x", 1, 0.1)] * len(a[3]))
    ours = strategies.generate_self_edits(None, None, load_passages("builtin", limit=1), chat=False,
                                         config=self_edit.SamplingConfig(k=2), progress=False)
    eval_ids = [p.id for p in load_passages("seal-eval")]
    for which in ("base", "gpt4_1", "iter2", "seal-reference:gpt4_1"):
        edits = load_reference_self_edits(which)
        assert list(edits.columns) == list(ours.columns)
        assert len(edits) == 1000 and edits.tokens.isna().all() and (edits.seconds == 0).all()
        assert list(dict.fromkeys(edits.passage_id)) == eval_ids
        assert list(edits["sample"][:5]) == [0, 1, 2, 3, 4]
    train = {p.id: p.title for p in load_passages("seal-train")}
    iter1 = load_reference_self_edits("iter1")
    assert len(iter1) == 250 and iter1.passage_id.iloc[0] == "seal-train-100"
    assert all(train[pid] == title for pid, title in zip(iter1.passage_id, iter1.title))
    assert len(load_reference_self_edits("iter0")) == 1000


@needs_reference
def test_self_edits_restricted_to_passages_in_their_order(shared_copy):
    passages = load_passages("seal-eval")
    edits = load_reference_self_edits("iter2", passages=[passages[7], "seal-eval-002"])
    assert list(edits.passage_id) == ["seal-eval-007"] * 5 + ["seal-eval-002"] * 5
    with pytest.raises(DataError, match=r"no reference self-edits for passage id\(s\) \['p0'\]"):
        load_reference_self_edits("iter2", passages=["p0"])
    with pytest.raises(DataError, match="accepted: base, gpt4_1, iter2, iter0, iter1"):
        load_reference_self_edits("iter3")


@needs_reference
@pytest.mark.parametrize("name", ["base", "naive", "gpt4_1", "iter2", *(n for n in reference.GRADED
                                                                     if n.endswith(("-base", "-iter2")))])
def test_graded_runs_one_row_per_judged_answer(shared_copy, name):
    graded = load_graded(name)
    assert len(graded) == 974 * 2
    assert set(graded.kind) == {"baseline", "adapter"} and (graded.condition == name).all()
    assert set(graded.passage_id) == {p.id for p in load_passages("seal-eval")}
    assert (graded["sample"] == 0).all()  # the paper graded each passage's first self-edit
    adapter = graded[graded.kind == "adapter"]
    # the reported figure is a mean of per-passage accuracies, rounded to 4 places
    assert adapter.groupby("passage").reference_correct.mean().mean() == pytest.approx(
        graded.attrs["overall"]["adapter_mean_accuracy"], abs=1e-4)
    assert graded.attrs["lora_params"]["rank"] == 32


@needs_reference
def test_every_prompt_has_its_self_edits_and_verdicts_by_name(shared_copy):
    """The paper's five prompts, before RL and after two rounds: self-edits and judged runs under one name each,
    on the evaluation passages in their order; the run judged each passage's first self-edit."""
    names = sorted(reference.PROMPT_SETS.values())
    assert len(names) == 10 and {"base", "iter2", "rewrite-iter2", "implications-very-long-base"} <= set(names)
    first = load_passages("seal-eval")[:4]
    for name in names:
        edits = load_reference_self_edits(f"seal-reference:{name}", first)
        k = reference.edits_per_passage(name)
        assert list(edits.passage_id) == [p.id for p in first for _ in range(k)], name
        judged = load_graded(name)
        assert judged.condition.iloc[0] == name
        first_judged = judged[(judged.passage_id == first[0].id) & (judged.kind == "adapter")]
        assert list(first_judged.question) == [qa.question for qa in first[0].questions]
    # very-long's self-edit file was not published: its one edit per passage is the one its run judged
    raw = json.loads((REFERENCE / "graded/prompts/iter2_prompt-very-long.json").read_text())
    assert load_reference_self_edits("implications-very-long-iter2").self_edit[0] == \
        raw["articles"][0]["completions"][0]["text"]
    assert load_graded("implications-iter2").equals(load_graded("iter2"))  # the headline prompt's alias
    with pytest.raises(DataError, match="rewrite-iter2"):  # an unknown name lists the ones there are
        load_graded("rewrite-iter3")


@needs_reference
def test_cpt_runs_follow_the_seal_eval_questions(shared_copy):
    graded = load_graded("cpt_iter2")
    assert len(graded) == 974 * 2 and graded["sample"].isna().all()
    adapter = graded[graded.kind == "adapter"]
    assert adapter.reference_correct.mean() == pytest.approx(graded.attrs["overall"]["adapter_accuracy"], abs=1e-4)
    first = load_passages("seal-eval")[0]
    assert list(adapter.question[:len(first.questions)]) == [qa.question for qa in first.questions]


@needs_reference
def test_sft_sets(shared_copy):
    for iteration in (0, 1):
        sft = load_sft(iteration)
        assert list(sft.columns) == ["prompt", "completion"] and len(sft) == 50
        assert sft.prompt[0].endswith("Implications:\n")  # prompts keep their trailing cue untouched
    with pytest.raises(DataError, match="accepted: 0 or 1"):
        load_sft(2)


@needs_reference
def test_checkout_discovery_from_notebooks_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SEAL_KIT_REFERENCE", raising=False)
    monkeypatch.delenv("SEAL_KIT_REFERENCE_SEARCH", raising=False)
    monkeypatch.setenv("SEAL_KIT_CACHE", str(tmp_path))
    monkeypatch.chdir(REPO / "notebooks")
    assert reference_file("self_edits/base_val.json") == REFERENCE / "self_edits" / "base_val.json"
    monkeypatch.chdir(tmp_path)  # still found from the package's own folder
    assert reference.reference_dir() == REFERENCE
    assert reference.reference_dir(search=False) == tmp_path / "seal_reference"


def test_malformed_files_name_file_item_and_field(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_KIT_REFERENCE", str(tmp_path))
    monkeypatch.setenv("SEAL_KIT_REFERENCE_SEARCH", "0")
    (tmp_path / "self_edits").mkdir()
    bad = tmp_path / "self_edits" / "base_val.json"
    item = {"title": "T", "context": "C", "questions": [{"question": "q", "answer": "a"}], "prompt": "P"}
    bad.write_text(json.dumps([{**item, "completions": ["ok"]}, {**item, "title": "U", "completions": "one"}]))
    with pytest.raises(DataError, match=r"item 1 \('U'\): field 'completions' is invalid") as err:
        load_reference_self_edits("base")
    assert str(bad) in str(err.value)
    bad.write_text(json.dumps([{**item, "completions": ["ok"], "questions": []}]))
    with pytest.raises(DataError, match=r"item 0 \('T'\): field 'questions' is invalid"):
        load_reference_passages("seal-eval")

    question = {"question": "q", "answer": "a", "baseline_answer": "b", "baseline_correct": False,
                "adapter_answer": "c", "adapter_correct": "yes"}
    run = tmp_path / "run.json"
    article = {"title": "T", "completions": [{"questions": [question]}]}
    run.write_text(json.dumps({"overall": {}, "articles": [article]}))
    with pytest.raises(DataError, match=r"run.json: articles\[0\] \('T'\).completions\[0\].questions\[0\]: "
                                        r"field 'adapter_correct' is invalid \('yes'\)"):
        load_graded(run)
    run.write_text("[1, 2]")
    with pytest.raises(DataError, match="run.json: expected a JSON object"):
        load_graded(run)
    with pytest.raises(DataError, match="neither a reference run"):
        load_graded("iter9")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "sft_best1of5_iter0.jsonl").write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "p"}\n')
    with pytest.raises(DataError, match=r"sft_best1of5_iter0.jsonl: line 2: field 'completion' is missing"):
        load_sft(0)


def test_missing_reference_folder_and_unknown_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_KIT_REFERENCE", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="SEAL_KIT_REFERENCE=.*absent: no such folder"):
        reference_file("LICENSE")
    with pytest.raises(DataError, match="'graded/base.jsn' is not a reference file"):
        reference_file("graded/base.jsn")


# ---- downloads, against a local server laid out like the SEAL repository ----

EVAL_ITEMS = [{"title": f"T{i}", "context": f"Passage {i}.", "questions": [{"question": "q?", "answer": "a"}],
               "completions": ["edit one", "edit two"], "prompt": f"prompt {i}"} for i in range(2)]


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """A small manifest served over HTTP from tmp/upstream; returns (root folder, request log, url)."""
    root = tmp_path / "upstream"
    files = {"LICENSE": ("LICENSE", b"MIT licence text\n"),
             "self_edits/base_val.json": ("knowledge-incorporation/data/synthetic_data/eval/base_val.json",
                                          json.dumps(EVAL_ITEMS).encode())}
    for upstream_path, content in files.values():
        (root / upstream_path).parent.mkdir(parents=True, exist_ok=True)
        (root / upstream_path).write_bytes(content)
    monkeypatch.setattr(reference_files, "MANIFEST", {name: (path, hashlib.sha256(content).hexdigest())
                                                      for name, (path, content) in files.items()})
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("SEAL_KIT_REFERENCE", raising=False)
    monkeypatch.setenv("SEAL_KIT_REFERENCE_SEARCH", "0")
    monkeypatch.setenv("SEAL_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SEAL_KIT_REFERENCE_URL", f"http://127.0.0.1:{server.server_port}")
    yield root, requests
    server.shutdown()
    server.server_close()


def test_download_fills_the_cache_once(upstream, tmp_path):
    root, requests = upstream
    passages = load_passages("seal-eval")
    assert [p.id for p in passages] == ["seal-eval-000", "seal-eval-001"]
    cached = tmp_path / "cache" / "seal_reference"
    assert (cached / "self_edits" / "base_val.json").is_file() and (cached / "LICENSE").is_file()
    assert sorted(requests) == ["/LICENSE", "/knowledge-incorporation/data/synthetic_data/eval/base_val.json"]
    assert not list(cached.rglob("*.part"))
    assert len(load_reference_self_edits("base")) == 4
    assert len(requests) == 2  # the second load reads the cache


def test_concurrent_downloads_fetch_once(upstream):
    root, requests = upstream
    found = []
    threads = [threading.Thread(target=lambda: found.append(reference_file("self_edits/base_val.json")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 4
    assert requests.count("/knowledge-incorporation/data/synthetic_data/eval/base_val.json") == 1


def test_download_with_wrong_hash_is_refused(upstream, tmp_path):
    root, requests = upstream
    (root / "knowledge-incorporation/data/synthetic_data/eval/base_val.json").write_text("[]")
    with pytest.raises(DataError, match=r"self_edits/base_val.json: the file at http://127.0.0.1:\d+/knowledge-"
                                        r"incorporation/.*base_val.json has sha256 4f53cda1.*, expected [0-9a-f]{64}"):
        load_passages("seal-eval")
    assert not (tmp_path / "cache" / "seal_reference" / "self_edits" / "base_val.json").exists()


def test_offline_without_cache_says_what_to_do(upstream, tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SEAL_KIT_REFERENCE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(ReferenceUnavailable) as err:
        load_reference_self_edits("base")
    message = str(err.value)
    assert message.startswith("self_edits/base_val.json: not on this machine, and downloading LICENSE")
    assert f"http://127.0.0.1:{port}/LICENSE" in message
    assert "SEAL_KIT_REFERENCE" in message and str(tmp_path / "cache" / "seal_reference") in message
    assert isinstance(err.value, DataError)
    (tmp_path / "cache" / "seal_reference" / "LICENSE").write_text("MIT licence text\n")
    with pytest.raises(ReferenceUnavailable, match=f"downloading self_edits/base_val.json from http://127.0.0.1:{port}"
                                                   "/knowledge-incorporation/data/synthetic_data/eval/base_val.json"):
        load_passages("seal-eval")


def test_reference_folder_wins_over_cache_and_download(upstream, tmp_path, monkeypatch):
    root, requests = upstream
    mine = tmp_path / "mine" / "self_edits"
    mine.mkdir(parents=True)
    shutil.copy(root / "knowledge-incorporation/data/synthetic_data/eval/base_val.json", mine / "base_val.json")
    monkeypatch.setenv("SEAL_KIT_REFERENCE", str(tmp_path / "mine"))
    assert reference_file("self_edits/base_val.json") == mine / "base_val.json"
    assert requests == []


def test_self_edits_parameter_names_sets_and_refuses_what_does_not_fit():
    assert reference.self_edit_sets("own", "builtin", 2) == []
    assert reference.self_edit_sets("seal-reference", "seal-eval", 1) == ["base", "gpt4_1", "iter2"]
    assert reference.self_edit_sets("seal-reference:iter2, gpt4_1", "seal-eval", 5) == ["iter2", "gpt4_1"]
    with pytest.raises(ValueError, match="DATA='builtin'.*seal-eval"):
        reference.self_edit_sets("seal-reference", "builtin", 1)
    with pytest.raises(ValueError, match="no reference set 'gpt5'"):
        reference.self_edit_sets("seal-reference:gpt5", "seal-eval", 1)
    with pytest.raises(ValueError, match="K=6"):
        reference.self_edit_sets("seal-reference", "seal-eval", 6)
    with pytest.raises(ValueError, match="expected \"own\""):
        reference.self_edit_sets("mine", "seal-eval", 1)
    assert reference.self_edit_sets("seal-reference:rewrite-iter2,implications-base", "seal-eval", 5) == \
        ["rewrite-iter2", "base"]
    with pytest.raises(ValueError, match="holds 1 self-edit per passage.*K = 1"):
        reference.self_edit_sets("seal-reference:implications-very-long-iter2", "seal-eval", 2)


@needs_reference
def test_reference_edits_and_the_papers_figures_for_our_conditions():
    passages = load_reference_passages("seal-eval")[:3]
    edits = reference.reference_edits(["gpt4_1", "iter2"], passages, 2)
    assert len(edits) == 3 * 2 * 2 and set(edits.condition) == {"seal-reference:gpt4_1", "seal-reference:iter2"}
    assert set(edits["sample"]) == {0, 1}
    everything = [p.id for p in load_reference_passages("seal-eval")]
    gpt = reference.paper_accuracy("seal-reference:gpt4_1", everything)
    assert gpt["paper_all_200"] == pytest.approx(0.4631)  # Table 2: 46.3
    assert gpt["paper_these_passages"] == pytest.approx(0.4631, abs=2e-3)  # all 200 passages: the same mean
    assert reference.paper_accuracy("base", everything)["paper_all_200"] == pytest.approx(0.3267)
    assert reference.paper_accuracy("self_edit", everything) == {"paper_these_passages": None, "paper_all_200": None}
