"""Generation backends: hf everywhere; vllm on a CUDA machine here, on a CPU in tests/test_vllm.py (make test-vllm)."""
import pytest
import torch

from seal_kit import backends
from seal_kit.arc.data import load_tasks
from seal_kit.arc.few_shot import ArcConfig, ArcFewShot
from seal_kit.backends import generate_with, save_active_adapter
from seal_kit.batched import BatchedLoRA
from seal_kit.generation import Generation, generate
from seal_kit.knowledge.graders import LocalJudge
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model, prepare_embedded
from seal_kit.self_edit import SamplingConfig
from seal_kit.strategies import generate_self_edits

PROMPTS = ["The capital of France is", "Rivers flow into the"]


def test_backend_names_are_checked():
    with pytest.raises(ValueError, match=r"SamplingConfig.backend must be one of \['hf', 'vllm'\], got 'tgi'"):
        SamplingConfig(backend="tgi")
    with pytest.raises(ValueError, match="EvalConfig.backend"):
        EvalConfig(backend="")
    with pytest.raises(ValueError, match="ArcConfig.backend"):
        ArcConfig(backend="vLLM")
    with pytest.raises(ValueError, match="LocalJudge.backend"):
        LocalJudge(None, None, backend="tgi")


def test_every_generation_goes_through_the_configured_backend(passage, monkeypatch):
    """Self-edits, knowledge answers (one at a time and routed through a batched inner loop's adapters),
    ARC answers and the local judge's replies: all come from the backend their config names."""
    calls = []

    def fake(model, tokenizer, prompts, **options):
        calls.append((options["desc"], len(prompts), options["route"] is not None))
        return [Generation("yes", 1, 0.0)] * len(prompts)

    monkeypatch.setitem(backends.BACKENDS, "fake", fake)
    model, tokenizer = load_model("tiny", seed=0)
    generate_self_edits(model, tokenizer, [passage], config=SamplingConfig(k=2, backend="fake"), progress=False)
    assert calls.pop() == ("self-edits", 2, False)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, epochs=1), EvalConfig(grader="contains",
                                                                                        backend="fake"))
    assert task.answer([passage])[0].answers == ["yes", "yes"]
    assert calls.pop() == ("answering", 2, False)
    task.score_many([(passage, "Pellin Harbour is the capital.", s) for s in range(2)], BatchedLoRA(task.inner))
    assert calls == [("answering", 2, False), ("answering", 4, True)]  # the baseline, then both adapters at once
    calls.clear()
    assert LocalJudge(model, tokenizer, backend="fake")(["Paris"], ["Paris"], ["Capital?"]) == [1.0]
    assert calls.pop() == ("judging", 1, False)
    arc_model, arc_tokenizer = load_model("tiny", seed=0)
    arc = ArcFewShot(arc_model, arc_tokenizer, InnerLoopConfig(rank=4), ArcConfig(views=2, backend="fake"))
    task = load_tasks("seal-train", ids=["5582e5ca"])[0]
    arc.predict(task)
    assert calls.pop() == ("generating", 2 * len(task.test), False)


def test_vllm_serves_the_adapter_the_model_generates_with(tmp_path, passage):
    """What the vllm backend saves for a model as it stands: its adapter when on, nothing when off."""
    model, tokenizer = load_model("tiny", seed=0)
    assert save_active_adapter(model, tmp_path / "plain") is None
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, epochs=1))
    folder = save_active_adapter(task.inner.model, tmp_path / "on")
    assert folder == str(tmp_path / "on") and (tmp_path / "on" / "adapter_config.json").exists()
    with task.inner.base_model():
        assert save_active_adapter(task.inner.model, tmp_path / "off") is None
    with pytest.raises(ValueError, match="route is for the hf backend"):
        generate_with("vllm", model, tokenizer, ["x"], max_new_tokens=1, route=lambda chunk: None)


def test_hf_backend_is_plain_generate(tiny):
    model, tokenizer = tiny
    ours = generate_with("hf", model, tokenizer, PROMPTS, max_new_tokens=5, progress=False)
    plain = generate(model, tokenizer, PROMPTS, max_new_tokens=5, progress=False)
    assert [(o.text, o.tokens) for o in ours] == [(o.text, o.tokens) for o in plain]
    with pytest.raises(ValueError, match="saved adapter folders are for the vllm backend"):
        generate_with("hf", model, tokenizer, PROMPTS, max_new_tokens=5, adapters=["some/folder", None])


@pytest.mark.gpu
@pytest.mark.vllm
def test_vllm_samples_and_answers_with_many_adapters(passage):
    model, tokenizer = load_model(str(prepare_embedded()))
    outs = generate_with("vllm", model, tokenizer, PROMPTS, max_new_tokens=8, temperature=1.0, top_p=0.95, seed=0)
    assert len(outs) == 2 and all(o.tokens > 0 and isinstance(o.text, str) for o in outs)
    items = [(passage, "Pellin Harbour is the capital of Velmora Island.", s) for s in range(3)]
    hf = KnowledgeTask(model, tokenizer, InnerLoopConfig(epochs=2))
    expected = hf.score_many(items, BatchedLoRA(hf.inner))
    hf.evaluation.backend = "vllm"
    served = hf.score_many(items, BatchedLoRA(hf.inner))
    assert torch.cuda.is_available()
    for a, b in zip(expected, served):  # bf16 kernels differ: most greedy answers agree
        assert sum(x == y for x, y in zip(a["answers"], b["answers"])) >= len(a["answers"]) // 2
