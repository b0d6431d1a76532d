"""The batched multi-candidate inner loop equals the one-at-a-time loop (same seeds -> same adapters)."""
import pytest
import torch
from peft.tuners.lora import LoraLayer

from seal_kit.batched import BatchedLoRA
from seal_kit.knowledge.data import QA, Passage
from seal_kit.executors import InProcess, choose
from seal_kit.inner_loop import ADAPTER, InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model

JOBS = [  # examples, seed, overrides: uneven document counts, lengths, batch sizes, epochs and lrs
    (["The cat sat on the mat.", "Dogs bark at night, loudly and for a long time."], 0, {}),
    (["Paris is in France.", "x y z", "A longer document about rivers, mountains and the sea."], 1,
     {"lr": 3e-4, "batch_size": 2}),
    (["Only one document here."], 2, {"epochs": 3}),
    ([("Question: what is two plus two? Answer:", " four")], 3, {}),  # loss on the completion only
]


def adapter_weights(model):
    return torch.cat([torch.cat([m.lora_A[ADAPTER].weight.flatten(), m.lora_B[ADAPTER].weight.flatten()])
                      for m in model.modules() if isinstance(m, LoraLayer)])


@pytest.fixture
def task():
    model, tokenizer = load_model("tiny", seed=0)
    return KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=2, rank=4, alpha=8), EvalConfig(max_new_tokens=8))


REFERENCE_JOBS = [  # the reference's Trainer settings: schedules (warmup too) and per-candidate clipping
    (examples, seed, {**overrides, **switches}) for (examples, seed, overrides), switches in zip(JOBS, [
        {"schedule": "linear", "max_grad_norm": 1.0}, {"schedule": "cosine", "warmup_ratio": 0.2},
        {"max_grad_norm": 0.05}, {"schedule": "linear", "warmup_ratio": 0.5, "max_grad_norm": 0.01}])]


@pytest.mark.parametrize("jobs", [JOBS, REFERENCE_JOBS], ids=["kit", "reference-trainer"])
def test_batched_training_matches_one_at_a_time(task, jobs):
    inner = task.inner
    one = []
    for examples, seed, overrides in jobs:
        result = inner.train(examples, seed=seed, **overrides)
        one.append((result, adapter_weights(inner.model)))
    lora = BatchedLoRA(inner)
    many = lora.train(jobs)
    for k, (result, weights) in enumerate(one):
        inner.reset(jobs[k][1])
        start = adapter_weights(inner.model)
        lora.load(k)
        batched = adapter_weights(inner.model)
        assert many[k].steps == result.steps and many[k].tokens == result.tokens
        assert many[k].losses == pytest.approx(result.losses, abs=1e-4)
        moved = (weights - start).norm()  # the update itself, not the random start, must match
        assert moved > 0
        assert (batched - weights).norm() / moved < 1e-3, f"candidate {k}"


def test_batched_training_refuses_bad_jobs(task):
    lora = BatchedLoRA(task.inner)
    with pytest.raises(ValueError, match="job 1 has no examples"):
        lora.train([(["a document"], 0, {}), ([], 1, {})])
    with pytest.raises(ValueError, match="dropout must be 0"):
        lora.train([(["a document"], 0, {"dropout": 0.1})])
    for switch in ({"pad_to": 64}, {"grad_accumulation": 2}):
        with pytest.raises(ValueError, match="BATCH_CANDIDATES = 1"):
            lora.train([(["a document"], 0, switch)])


def test_rows_route_each_row_through_its_own_adapter(task, passage):
    """Generation with rows routed to adapters 1, 0 gives each row what its adapter alone gives."""
    inner = task.inner
    lora = BatchedLoRA(inner)
    lora.train([(["Velmora Island lies in the Sorrel Sea."], 0, {"epochs": 4}),
                (["Pellin Harbour is the capital."], 1, {"epochs": 4})])
    ids = task.tokenizer(["Velmora Island", "Pellin"], return_tensors="pt", padding=True)
    with lora.rows([1, 0]), torch.no_grad():
        routed = inner.model(**ids).logits
    for row, k in enumerate([1, 0]):
        lora.load(k)
        with torch.no_grad():
            alone = inner.model(**ids).logits[row]
        assert torch.allclose(routed[row], alone, atol=1e-5)


def test_score_many_batched_equals_one_at_a_time(task, passage):
    other = Passage("p1", "Corvane Ridge", "Corvane Ridge rises above the Tallow Plains. Its summit is Hesper Peak.",
                    (QA("What is the summit of Corvane Ridge?", "Hesper Peak"),))
    items = [(passage, "Velmora Island's capital is Pellin Harbour.\nIt lies in the Sorrel Sea.", 0),
             (other, "Hesper Peak is the summit.", 0),
             (passage, "", 1),  # an empty edit: trains on the passage alone
             (passage, "The island is in the Sorrel Sea, and ships dock at Pellin Harbour.", 2)]
    one = task.score_many(items)
    many = task.score_many(items, BatchedLoRA(task.inner))
    for a, b in zip(one, many):
        assert (a["context_id"], a["seed"], a["status"], a["steps"], a["documents"]) == \
               (b["context_id"], b["seed"], b["status"], b["steps"], b["documents"])
        assert b["losses"] == pytest.approx(a["losses"], abs=1e-4)
        assert b["answers"] == a["answers"] and b["reward"] == a["reward"]
    streamed = dict(InProcess(batch=3).score(task, items))  # chunks of 3 and 1, rows keyed by item index
    assert sorted(streamed) == [0, 1, 2, 3]
    assert [streamed[n]["answers"] for n in range(4)] == [a["answers"] for a in one]


def test_gradient_checkpointing_changes_memory_not_results(task):
    """Checkpointed training reaches the same adapter, one at a time and batched."""
    inner = task.inner
    plain = inner.train(JOBS[0][0], seed=0)
    plain_weights = adapter_weights(inner.model)
    layers = [m for m in inner.model.modules() if hasattr(m, "gradient_checkpointing")]
    seen = []
    hook = layers[-1].register_forward_pre_hook(lambda m, args: seen.append(m.gradient_checkpointing))
    checked = inner.train(JOBS[0][0], seed=0, gradient_checkpointing=True)
    hook.remove()
    assert seen and all(seen)  # it really trained checkpointed
    assert checked.losses == pytest.approx(plain.losses, abs=1e-5)
    assert torch.allclose(adapter_weights(inner.model), plain_weights, atol=1e-5)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in inner.model.modules())  # switched off again for generation
    lora = BatchedLoRA(inner)
    batched = lora.train([(JOBS[0][0], 0, {"gradient_checkpointing": True})])
    lora.load(0)
    assert batched[0].losses == pytest.approx(plain.losses, abs=1e-4)
    assert torch.allclose(adapter_weights(inner.model), plain_weights, atol=1e-4)


def test_choose_refuses_an_inner_loop_candidates_cannot_share_before_any_work():
    """The reference's padding and accumulation need one candidate at a time: refused when the executor
    is chosen, naming the parameters, not after a round's sampling."""
    for switch in ({"pad_to": 64}, {"grad_accumulation": 2}):
        inner = InnerLoopConfig(**switch)
        with pytest.raises(ValueError, match="need BATCH_CANDIDATES = 1") as error:
            choose("local", 2, inner=inner)
        assert "PAD_TO" in str(error.value)
        assert isinstance(choose("local", 1, inner=inner), InProcess)
    assert choose("local", 4, inner=InnerLoopConfig()).batch == 4
