"""Continued pretraining and sequential edits (forgetting) on a tiny model."""
import dataclasses
import json
import statistics

import pytest
import torch
import yaml

from seal_kit.knowledge.cpt import (CPTConfig, continued_pretraining, passage_documents, pooled_documents, read_edits,
                          trained_generator)
from seal_kit.knowledge.data import load_passages
from seal_kit.knowledge import forgetting
from seal_kit import plots
from seal_kit.knowledge.forgetting import ForgettingConfig, across_sequences, draw_sequences, matrix_table, sequential_edits
from seal_kit.generator import Generator, GeneratorConfig
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.self_edit import DocumentConfig, SamplingConfig, training_documents

PASSAGES = load_passages("builtin", limit=3)
EDITS = {p.id: [f"{p.title} is worth remembering.\nIt is described in a passage.", "The passage is about it."]
         for p in PASSAGES}


def length_grader(predictions, answers, questions=None):
    """Varies with what the adapted model says (a random tiny model never says the gold answer)."""
    return [float(len(p) % 2 == 0) for p in predictions]


@pytest.fixture
def task():
    model, tokenizer = load_model("tiny", seed=0)
    return KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=1),
                         EvalConfig(max_new_tokens=5), grader=length_grader)


def base_weight(task):
    return next(p for n, p in task.inner.model.named_parameters() if "q_proj.base_layer.weight" in n).detach().clone()


def test_pool_holds_every_edit_each_followed_by_its_passage():
    docs = pooled_documents(PASSAGES, EDITS)
    expected = sum(len(training_documents(e, p).texts) for p in PASSAGES for e in EDITS[p.id])
    assert len(docs) == expected and sum(d == f"{p.title}\n{p.context}" for p in PASSAGES for d in docs) == 6
    assert passage_documents(PASSAGES) == [f"{p.title}\n{p.context}" for p in PASSAGES]
    with pytest.raises(ValueError, match=PASSAGES[2].id):
        pooled_documents(PASSAGES, {p.id: EDITS[p.id] for p in PASSAGES[:2]})


@pytest.mark.parametrize("split", ["kit", "reference"])
def test_pool_without_line_splitting_has_each_self_edit_whole_then_its_passage(split):
    docs = pooled_documents(PASSAGES, EDITS, DocumentConfig(split=split, split_lines=False))
    expected = [d for p in PASSAGES for edit in EDITS[p.id] for d in (f"{p.title}\n{edit}", f"{p.title}\n{p.context}")]
    assert docs == expected and len(docs) < len(pooled_documents(PASSAGES, EDITS))  # the first edit has two lines


class RecordedAdamW(torch.optim.AdamW):
    """AdamW that records the learning rate of every step it takes."""
    steps: list[float] = []

    def step(self, closure=None):
        RecordedAdamW.steps.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_every_pool_trains_alike_but_the_passage_control_may_have_its_own_lr(task, monkeypatch):
    monkeypatch.setattr(torch.optim, "AdamW", RecordedAdamW)
    monkeypatch.setattr(RecordedAdamW, "steps", [])
    task.inner.config = dataclasses.replace(task.inner.config, batch_size=2, grad_accumulation=2)  # the reference's 4 x 2
    docs = pooled_documents(PASSAGES, EDITS, DocumentConfig(split_lines=False))
    pool = continued_pretraining(task, PASSAGES, docs, progress=False)
    assert len(docs) == 12 and pool["steps"] == 3 and pool["lr"] == 1e-2  # 6 batches of 2, 2 batches per step
    control = continued_pretraining(task, PASSAGES, passage_documents(PASSAGES), progress=False, lr=1e-4)
    assert control["steps"] == 1 and control["lr"] == 1e-4  # 3 passages: batches of 2 and 1, one step
    assert RecordedAdamW.steps == [1e-2] * 3 + [1e-4]
    with pytest.raises(ValueError, match="lr must be > 0"):
        continued_pretraining(task, PASSAGES, docs, progress=False, lr=0.0)


def test_read_edits_groups_by_passage_and_names_bad_lines(tmp_path):
    path = tmp_path / "edits.jsonl"
    path.write_text('{"passage_id": "a", "self_edit": "x"}\n{"passage_id": "a", "self_edit": "y"}\n'
                    '{"passage_id": "b", "self_edit": "z"}\n')
    assert read_edits(path) == {"a": ["x", "y"], "b": ["z"]}
    path.write_text('{"passage_id": "a", "self_edit": "x"}\n{"passage": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_edits(path)


def test_continued_pretraining_lora_and_full(task):
    n_questions = sum(len(p.questions) for p in PASSAGES)
    base = continued_pretraining(task, PASSAGES, [], progress=False)
    assert base["steps"] == 0 and base["lr"] is None and base["n_questions"] == n_questions
    assert len(base["per_passage"]) == 3
    docs = pooled_documents(PASSAGES, EDITS)
    lora = continued_pretraining(task, PASSAGES, docs, progress=False)
    assert lora["steps"] == len(docs) and 0.0 <= lora["accuracy"] <= 1.0 and lora["n_documents"] == len(docs)
    before = base_weight(task)
    full = continued_pretraining(task, PASSAGES, docs, CPTConfig(full=True, full_lr=1e-3), progress=False)
    assert full["steps"] == len(docs) and full["lr"] == 1e-3 and all(loss == loss for loss in full["losses"])
    assert torch.equal(before, base_weight(task))  # the full fine-tune is undone
    assert not any(p.requires_grad for n, p in task.inner.model.named_parameters() if "lora_" not in n)
    assert continued_pretraining(task, PASSAGES, [], progress=False) == base  # nothing left behind


@pytest.mark.parametrize("update", ["stack", "merge"])
def test_trained_generator_from_a_run_directory_written_before_generator_json(task, tmp_path, update):
    """Older runs: the generator config only in config.yaml's rest_em key (notebook 03 wrote it there)."""
    config = GeneratorConfig(rank=4, alpha=8, lr=1e-2, epochs=1, update=update)
    generator = Generator(task.inner, config)
    generator.update([("Write about it:", "It is an island.")], seed=0)
    generator.save(tmp_path / "round-0" / "generator")
    (tmp_path / "round-0" / "summary.json").write_text('{"round": 0, "updated": true}')
    trained = {n: p.detach().clone() for n, p in task.inner.model.named_parameters() if ".generator." in n}
    generator.update([("Write about it:", "Something else entirely.")], seed=1)
    generator.save(tmp_path / "round-1" / "generator")  # saved, but its round never finished: not used
    task.inner.model.delete_adapter("generator")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"rest_em": {"generator": json.loads(json.dumps(
        config.__dict__))}}))
    before = base_weight(task)
    with trained_generator(task.inner, tmp_path) as model:
        loaded = {n: p for n, p in model.named_parameters() if ".generator." in n}
        if update == "stack":
            assert all(torch.equal(loaded[n], trained[n]) for n in trained)
        else:  # folded into the weights
            assert not torch.equal(before, base_weight(task))
    assert torch.equal(before, base_weight(task)) and "generator" not in task.inner.model.peft_config
    with pytest.raises(ValueError, match="not a ReST-EM run directory"):
        with trained_generator(task.inner, tmp_path / "nothing"):
            pass


@pytest.mark.parametrize("update", ["merge", "stack", "route"])
def test_sequential_edits_matrix(task, update):
    edits = {p.id: EDITS[p.id][0] for p in PASSAGES}
    before = base_weight(task)
    base_row = [r.accuracy for r in task.answer(PASSAGES)]  # a fresh adapter: the base model
    result = sequential_edits(task, PASSAGES, edits, ForgettingConfig(update=update, replay=1), progress=False)
    matrix = result.matrix
    assert len(matrix) == 4 and all(len(row) == 3 for row in matrix)
    assert matrix[0] == result.base == base_row  # row 0: every passage before any edit
    assert all((matrix[i + 1][j] is None) == (j > i) for i in range(3) for j in range(3))
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row if v is not None)
    assert result.retention == [row[0] for row in matrix[1:]] and result.table().shape == (4, 3)
    assert list(result.table().index[:2]) == ["base", "after edit 0"]
    assert plots.forgetting_heatmap(matrix).data[0].y[:2] == ("base", "after edit 0")
    assert [s["self_edit"] for s in result.steps] == [edits[p.id] for p in PASSAGES]
    replayed = [s["replayed"] for s in result.steps]
    assert replayed[:2] == [[], [0]] and replayed[2] in ([0], [1])  # one earlier edit, chosen under the seed
    assert result.steps[1]["n_documents"] > len(training_documents(edits[PASSAGES[1].id], PASSAGES[1]).texts)
    if update == "route":  # a passage's own adapter answers it: nothing later can change its accuracy
        assert all(matrix[i][j] == matrix[j + 1][j] for i in range(1, 4) for j in range(i))
    assert torch.equal(before, base_weight(task))  # merged edits are undone at the end


def test_edits_from_current_are_sampled_after_the_earlier_edits_were_merged(task, monkeypatch):
    sampled_with, merged_after, texts = [], [], []  # the base weight at each sampling, after each step; the edits

    def spy(model, *args, **kwargs):
        sampled_with.append(base_weight(task))
        table = generate_self_edits(model, *args, **kwargs)
        texts.append(table.self_edit[0])
        return table

    generate_self_edits = forgetting.generate_self_edits
    monkeypatch.setattr(forgetting, "generate_self_edits", spy)
    before = base_weight(task)
    result = sequential_edits(task, PASSAGES, None, ForgettingConfig(edits_from="current"), progress=False,
                              on_step=lambda step, row: merged_after.append(base_weight(task)),
                              sampling=SamplingConfig(max_new_tokens=8))
    assert len(sampled_with) == 3 and torch.equal(sampled_with[0], before)
    for i in (1, 2):  # edit i is written by the model with edits 0..i-1 merged in
        assert torch.equal(sampled_with[i], merged_after[i - 1]) and not torch.equal(sampled_with[i], sampled_with[i - 1])
    assert [s["self_edit"] for s in result.steps] == texts
    with pytest.raises(ValueError, match="pass edits=None"):
        sequential_edits(task, PASSAGES, {p.id: "x" for p in PASSAGES}, ForgettingConfig(edits_from="current"))


def test_sequences_are_drawn_under_the_seed_and_averaged_cell_by_cell():
    orders = draw_sequences(PASSAGES, 2, sequences=3, seed=0)
    assert len(orders) == 3 and orders[0] == PASSAGES[:2] and orders == draw_sequences(PASSAGES, 2, 3, seed=0)
    assert all(len({p.id for p in order}) == 2 for order in orders)
    with pytest.raises(ValueError, match="n <= 3"):
        draw_sequences(PASSAGES, 4)
    first, second = [[0.2, 0.4], [0.6, None], [0.0, 1.0]], [[0.4, 0.4], [1.0, None], [0.5, 0.5]]
    mean, spread = across_sequences([first, second])
    assert mean == [[pytest.approx(0.3), 0.4], [0.8, None], [0.25, 0.75]]
    assert spread[0] == [pytest.approx(statistics.stdev([0.2, 0.4])), 0.0] and spread[1][1] is None
    assert across_sequences([first]) == (first, [[0.0, 0.0], [0.0, None], [0.0, 0.0]])
    shown = matrix_table(mean, spread)
    assert list(shown.index) == ["base", "after edit 0", "after edit 1"] and shown.iloc[1].tolist() == ["0.80 ± 0.28", ""]
    with pytest.raises(ValueError, match="same shape"):
        across_sequences([first, first[:2]])


def test_sequential_edits_wants_one_string_per_passage(task):
    with pytest.raises(ValueError, match="one self-edit string.*read_edits"):
        sequential_edits(task, PASSAGES, EDITS, progress=False)  # lists, as cpt.read_edits gives


def test_cpt_refuses_passages_without_questions(task):
    with pytest.raises(ValueError, match="no questions"):
        continued_pretraining(task, [], [], progress=False)


def test_forgetting_config_is_checked():
    with pytest.raises(ValueError, match="merge, stack, route"):
        ForgettingConfig(update="mix")
    with pytest.raises(ValueError, match="base, current"):
        ForgettingConfig(edits_from="latest")


def test_merged_edits_are_refused_where_vllm_would_not_see_them(task):
    edits = {p.id: EDITS[p.id][0] for p in PASSAGES}
    with pytest.raises(ValueError, match=r"SamplingConfig\(backend='hf'\)"):
        sequential_edits(task, PASSAGES, None, ForgettingConfig(edits_from="current"), sampling=SamplingConfig(backend="vllm"))
    task.evaluation = dataclasses.replace(task.evaluation, backend="vllm")
    with pytest.raises(ValueError, match=r"EvalConfig\(backend='hf'\)"):
        sequential_edits(task, PASSAGES, edits, progress=False)
