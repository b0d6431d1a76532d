import pytest
import torch

from seal_kit import precision
from seal_kit.knowledge.data import load_passages
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask, PassageOnly, answer_style
from seal_kit.models import load_model


def make_task(grader="contains"):
    model, tokenizer = load_model("tiny", seed=0)
    return KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=2),
                         EvalConfig(grader=grader, max_new_tokens=6))


def test_baseline_is_computed_once_per_passage(passage, monkeypatch):
    task = make_task()
    calls = []
    real = task.answer
    monkeypatch.setattr(task, "answer", lambda ps: calls.append([p.id for p in ps]) or real(ps))
    first = task.baseline(passage)
    task.score(passage, "Pellin Harbour is the capital of Velmora Island.", seed=0)
    task.score(passage, "Velmora Island lies in the Sorrel Sea.", seed=1)
    assert task.baseline(passage) is first
    assert calls.count(["p0"]) == 3  # one baseline + one evaluation per candidate, never a re-graded baseline
    assert len(first["answers"]) == len(passage.questions)


def test_reward_is_adapted_accuracy_and_gain_is_over_baseline(passage):
    always_right = lambda predictions, answers, questions=None: [1.0] * len(predictions)  # noqa: E731
    task = KnowledgeTask(*load_model("tiny", seed=0), InnerLoopConfig(rank=4, epochs=1), EvalConfig(max_new_tokens=4),
                         grader=always_right)
    result = task.score(passage, "Pellin Harbour is the capital of Velmora Island.")
    assert result["reward"] == 1.0 and result["baseline"] == 1.0 and result["gain"] == 0.0
    graded = make_task("exact_match").score(passage, "Pellin Harbour is the capital of Velmora Island.")
    assert graded["gain"] == graded["reward"] - graded["baseline"]
    assert set(graded) >= {"reward", "baseline", "gain", "status", "losses", "answers", "documents", "train_seconds"}
    assert graded["status"] == "ok" and graded["n_examples"] == 2 and graded["steps"] == 4


def test_empty_edit_is_an_outcome_not_a_crash(passage):
    result = make_task().score(passage, "\n\n  \n")
    assert result["status"] == "empty_edit"
    assert result["documents"] == [f"{passage.title}\n{passage.context}"]


def test_passage_only_control(passage):
    result = make_task().score_passage_only(passage)
    assert result["n_examples"] == 1 and 0.0 <= result["reward"] <= 1.0


def test_the_step_matched_control_trains_the_passage_as_often_as_a_self_edit(passage):
    task = make_task()
    edit = "Pellin Harbour is the capital of Velmora Island.\nVelmora Island lies in the Sorrel Sea."
    n = task.documents_of(passage, edit)
    self_edit, matched = task.score(passage, edit), task.score(passage, PassageOnly(n))
    assert n == self_edit["n_examples"] == matched["n_examples"] == 3  # two lines and the passage
    assert matched["steps"] == self_edit["steps"] == 3 * 2  # 2 epochs
    assert matched["documents"] == [f"{passage.title}\n{passage.context}"] * 3 and matched["status"] == "ok"
    with pytest.raises(ValueError, match="PassageOnly.repeats must be a whole number >= 1, got 0"):
        PassageOnly(0)


def test_baselines_are_answered_passage_by_passage(passage, monkeypatch):
    """The same batches as after training, so batch make-up cannot pose as a gain (it does in bf16)."""
    from dataclasses import replace

    task = make_task()
    calls = []
    real = task.answer
    monkeypatch.setattr(task, "answer", lambda ps: calls.append([p.id for p in ps]) or real(ps))
    other = replace(passage, id="p1")
    task.baseline(passage), task.baseline(other)
    assert calls == [["p0"], ["p1"]]


def test_an_edit_with_no_documents_trains_nothing(passage):
    from seal_kit.self_edit import DocumentConfig

    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, epochs=1), EvalConfig(max_new_tokens=4),
                         DocumentConfig(include_passage=False))
    result = task.score(passage, "")
    assert result["status"] == "empty_edit" and result["steps"] == 0 and result["gain"] == 0.0
    assert result["reward"] == task.baseline(passage)["reward"]
    assert task.score_passage_only(passage)["n_examples"] == 1  # the control always has the passage


def test_a_model_is_wrapped_once(passage):
    model, tokenizer = load_model("tiny", seed=0)
    KnowledgeTask(model, tokenizer)
    with pytest.raises(ValueError, match="already carries a LoRA adapter"):
        KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=16))


def test_a_prebuilt_inner_loop_can_be_passed(passage):
    from seal_kit.inner_loop import InnerLoop

    model, tokenizer = load_model("tiny", seed=0)
    inner = InnerLoop(model, tokenizer, InnerLoopConfig(rank=4, epochs=1))
    task = KnowledgeTask(model, tokenizer, inner, EvalConfig(max_new_tokens=4))
    assert task.inner is inner and task.score(passage, "A fact about Velmora Island.")["steps"] == 2


def test_the_three_steps_the_outer_loop_uses(passage):
    task = make_task()
    prompt = task.self_edit_prompt(passage)
    assert passage.context in prompt and passage.title in prompt
    job = task.inner_job(passage, "Implications:\n- Pellin Harbour is the capital.\n- It lies in the Sorrel Sea.")
    assert job.status == "ok" and len(job.examples) == 3 and not job.failed
    assert 0.0 <= task.evaluate(passage)["reward"] <= 1.0


def test_a_failed_job_scores_zero_without_training(passage):
    from seal_kit.reward import InnerJob

    always_right = lambda predictions, answers, questions=None: [1.0] * len(predictions)  # noqa: E731
    task = KnowledgeTask(*load_model("tiny", seed=0), InnerLoopConfig(rank=4, epochs=1), EvalConfig(max_new_tokens=4),
                         grader=always_right)
    result = task.score_job(passage, InnerJob(["ignored"], status="bad_json"))
    assert result["reward"] == 0.0 and result["steps"] == 0 and result["gain"] == -1.0


def test_reference_layout_and_plain_prompts_reach_every_prompt_the_task_writes(passage, monkeypatch):
    from seal_kit.knowledge import task as knowledge

    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, epochs=1), EvalConfig(max_new_tokens=4),
                         chat=False, layout="reference")
    assert task.self_edit_prompt(passage).endswith(f"Passage:\n{passage.title}\n{passage.context}\n\nImplications:\n")
    asked = []
    real = knowledge.generate_with
    monkeypatch.setattr(knowledge, "generate_with", lambda *a, **k: asked.extend(a[3]) or real(*a, **k))
    task.evaluate(passage)
    assert asked and all(p.startswith("Answer the question") and p.endswith("\nAnswer:") for p in asked)


def test_answer_style_counts_words_and_recitations_of_the_passage():
    context = ("The Harbor Light was designed by Mara Ellison in 1887 and stands forty meters tall "
               "on the northern cliff of the island.")
    recital = "the harbor light, was designed by Mara Ellison in 1887 and stands forty meters tall"
    style = answer_style(["Mara Ellison", recital, "It was designed by Ellison in 1887 and is forty meters tall."], context)
    assert style["words"] == (2 + 15 + 12) / 3
    assert style["recites"] == 1 / 3  # only the 12+ word run copied from the passage; a paraphrase is no recital
    assert answer_style([], context) == {"words": 0.0, "recites": 0.0}


needs_bf16 = pytest.mark.skipif(
    not (precision.native_bf16("cpu")[0] or torch.cuda.is_available()),
    reason="this CPU has no bf16 units: the embedded model in bf16 would run ~100x slower than float32 (seal-kit doctor)")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", pytest.param("bfloat16", marks=needs_bf16)])
def test_the_embedded_model_learns_a_passage_in_either_dtype(dtype):
    """At the notebooks' defaults (10 epochs, LoRA r32 on every projection, the fitted grader), training on a
    built-in passage alone lifts closed-book accuracy far above the base model's (+54 points on the first
    passage in float32 on a 2-core EPYC): the effect every lesson rests on, and what a dtype bug would break."""
    model, tokenizer = load_model("embedded", dtype=dtype)
    assert model.dtype == getattr(torch, dtype)
    task = KnowledgeTask(model, tokenizer)
    rows = [task.score_passage_only(p) for p in load_passages("builtin", limit=2)]
    gain = sum(r["gain"] for r in rows) / len(rows)
    assert gain >= 0.3, [(r["baseline"], r["reward"], r["answers"]) for r in rows]
