"""Generation backends: hf everywhere; vllm on a CUDA machine with the [vllm] extra (skipped otherwise)."""
import pytest
import torch

from seal_kit.backends import generate_with
from seal_kit.batched import BatchedLoRA
from seal_kit.generation import generate
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge import EvalConfig, KnowledgeTask
from seal_kit.models import load_model, prepare_embedded
from seal_kit.self_edit import SamplingConfig

PROMPTS = ["The capital of France is", "Rivers flow into the"]


def test_backend_names_are_checked():
    with pytest.raises(ValueError, match=r"SamplingConfig.backend must be one of \['hf', 'vllm'\], got 'tgi'"):
        SamplingConfig(backend="tgi")
    with pytest.raises(ValueError, match="EvalConfig.backend"):
        EvalConfig(backend="")


def test_hf_backend_is_plain_generate(tiny):
    model, tokenizer = tiny
    ours = generate_with("hf", model, tokenizer, PROMPTS, max_new_tokens=5, progress=False)
    plain = generate(model, tokenizer, PROMPTS, max_new_tokens=5, progress=False)
    assert [(o.text, o.tokens) for o in ours] == [(o.text, o.tokens) for o in plain]
    with pytest.raises(ValueError, match="saved adapter folders are for the vllm backend"):
        generate_with("hf", model, tokenizer, PROMPTS, max_new_tokens=5, adapters=["some/folder", None])


@pytest.mark.gpu
def test_vllm_samples_and_answers_with_many_adapters(passage):
    pytest.importorskip("vllm")
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
