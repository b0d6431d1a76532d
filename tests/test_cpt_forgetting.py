"""Continued pretraining and sequential edits (forgetting) on a tiny model."""
import dataclasses
import json

import pytest
import torch
import yaml

from seal_kit.cpt import (CPTConfig, continued_pretraining, passage_documents, pooled_documents, read_edits,
                          trained_generator)
from seal_kit.data import load_passages
from seal_kit.forgetting import ForgettingConfig, sequential_edits
from seal_kit.generator import Generator, GeneratorConfig
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.self_edit import DocumentConfig, training_documents

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
    result = sequential_edits(task, PASSAGES, edits, ForgettingConfig(update=update, replay=1), progress=False)
    matrix = result.matrix
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert all(matrix[i][j] is None for i in range(3) for j in range(3) if j > i)
    assert all(0.0 <= matrix[i][j] <= 1.0 for i in range(3) for j in range(3) if j <= i)
    assert result.retention == [row[0] for row in matrix] and result.table().shape == (3, 3)
    replayed = [s["replayed"] for s in result.steps]
    assert replayed[:2] == [[], [0]] and replayed[2] in ([0], [1])  # one earlier edit, chosen under the seed
    assert result.steps[1]["n_documents"] > len(training_documents(edits[PASSAGES[1].id], PASSAGES[1]).texts)
    if update == "route":  # a passage's own adapter answers it: nothing later can change its accuracy
        assert all(matrix[i][j] == matrix[j][j] for i in range(3) for j in range(i + 1))
    assert torch.equal(before, base_weight(task))  # merged edits are undone at the end


def test_sequential_edits_wants_one_string_per_passage(task):
    with pytest.raises(ValueError, match="one self-edit string.*read_edits"):
        sequential_edits(task, PASSAGES, EDITS, progress=False)  # lists, as cpt.read_edits gives


def test_cpt_refuses_passages_without_questions(task):
    with pytest.raises(ValueError, match="no questions"):
        continued_pretraining(task, [], [], progress=False)


def test_forgetting_config_is_checked():
    with pytest.raises(ValueError, match="merge, stack, route"):
        ForgettingConfig(update="mix")
