"""DTYPE: what "auto" picks from the CPU's own flags, refusals and warnings, mixed precision in the inner loop,
answers with the adapter folded in, and the run's dtype as part of its identity."""
import json
import warnings

import pytest
import torch

from seal_kit import precision
from seal_kit.batched import BatchedLoRA
from seal_kit.cli import main
from seal_kit.doctor import describe, examine, machine_line
from seal_kit.inner_loop import InnerLoop, InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.runs import start_run


@pytest.fixture
def flags(monkeypatch):
    """Pretend the CPU reports these feature flags; "auto" decides by them alone (no override)."""
    monkeypatch.delenv(precision.AUTO_ENV, raising=False)

    def set_flags(*names):
        monkeypatch.setattr(precision, "_flags", lambda: frozenset(names))
    return set_flags


@pytest.mark.parametrize("names, native", [(("avx2", "avx512f", "avx512_bf16"), True), (("avx2", "amx_tile", "amx_bf16"), True),
                                           (("fp", "asimd", "bf16"), True), (("avx2", "fma"), False), ((), False)])
def test_auto_computes_in_bf16_only_where_the_cpu_has_bf16_units(flags, names, native):
    flags(*names)
    assert precision.native_bf16("cpu")[0] is native
    assert precision.choose_dtype("auto", "cpu") == (torch.bfloat16 if native else torch.float32)
    assert precision.choose_dtype("float32", "cpu") == torch.float32


def test_the_environment_can_pin_what_auto_means(flags, monkeypatch):
    flags("avx512_bf16")
    monkeypatch.setenv(precision.AUTO_ENV, "float32")
    assert precision.choose_dtype("auto", "cpu") == torch.float32
    monkeypatch.setenv(precision.AUTO_ENV, "float64")
    with pytest.raises(ValueError, match="DTYPE='float64' is not a dtype the kit runs in; choose one of auto, float32, bfloat16"):
        precision.choose_dtype("auto", "cpu")


def test_cpu_flags_are_read_from_the_machine():
    flags = precision.cpu_flags()
    assert isinstance(flags, set)
    if torch.backends.cpu.get_cpu_capability().startswith("AVX"):  # x86 Linux: /proc/cpuinfo lists them
        assert "avx2" in flags or "avx" in flags


def test_bad_dtypes_are_refused_with_the_reason(flags):
    flags()
    with pytest.raises(ValueError, match="float16' is refused on a CPU: it has no fast float16 kernels"):
        precision.choose_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="DTYPE='int8' is not a dtype the kit runs in; choose one of auto, float32, bfloat16"):
        precision.choose_dtype("int8", "cpu")
    with pytest.raises(ValueError, match="choose one of auto"):
        load_model("tiny", dtype="fp32")
    assert precision.choose_dtype(torch.float32, "cpu") == torch.float32  # a torch dtype by its name


def test_bf16_without_native_units_runs_and_warns_naming_the_slowdown(flags):
    flags("avx2")
    with pytest.warns(UserWarning, match=r"without native bf16: its matmuls ran \d+x slower than float32 here"):
        assert precision.choose_dtype("bfloat16", "cpu") == torch.bfloat16


def quietly(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # bf16 on a CPU without bf16 units warns (tested above)
        return load_model("tiny", seed=0, **kwargs)


def test_mixed_precision_base_in_bf16_lora_optimiser_and_loss_in_float32(passage):
    model, tokenizer = quietly(dtype="bfloat16")
    config = InnerLoopConfig(rank=4, alpha=8, epochs=15, lr=1e-2)
    inner = InnerLoop(model, tokenizer, config)
    lora = {p.dtype for n, p in inner.model.named_parameters() if "lora_" in n}
    base = {p.dtype for n, p in inner.model.named_parameters() if "lora_" not in n}
    assert lora == {torch.float32} and base == {torch.bfloat16}
    state = inner.model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
    result = inner.train([passage.context], seed=0)
    assert state.lora_A["default"].weight.dtype == torch.float32
    # it learns, as float32 does (autocast over a float32 loop did not: it ended where it began)
    exact = InnerLoop(*load_model("tiny", seed=0, dtype="float32"), config).train([passage.context], seed=0)
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.losses[-1] == pytest.approx(exact.losses[-1], rel=0.05)
    batch = tokenizer([passage.context], return_tensors="pt")
    with torch.no_grad():
        out = inner.model(**batch, labels=batch["input_ids"])
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32


def test_the_batched_inner_loop_equals_one_at_a_time_in_bf16_too():
    model, tokenizer = quietly(dtype="bfloat16")
    inner = InnerLoop(model, tokenizer, InnerLoopConfig(epochs=2, rank=4, alpha=8))
    jobs = [(["The cat sat on the mat.", "Dogs bark at night, loudly and for a long time."], 0, {}),
            (["Paris is in France.", "A longer document about rivers, mountains and the sea."], 1, {"lr": 3e-4})]
    one = [inner.train(examples, seed=seed, **overrides).losses for examples, seed, overrides in jobs]
    many = BatchedLoRA(inner).train(jobs)
    for k, losses in enumerate(one):
        # bf16 rounds the packed rows' activations otherwise than one row's: equal to bf16's precision
        assert many[k].losses == pytest.approx(losses, rel=2e-2), f"candidate {k}"


def test_answers_with_the_adapter_folded_in_equal_peft_s_and_leave_the_base_bit_for_bit(passage):
    model, tokenizer = load_model("tiny", seed=0, dtype="float32")
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, epochs=10), EvalConfig(max_new_tokens=12))
    base = {n: p.detach().clone() for n, p in task.inner.model.named_parameters()}
    task.inner.train([passage.context], seed=0)
    assert task._merge_answers()  # a CPU in float32: where it pays
    folded = task.answer([passage])[0].answers
    task.evaluation.merged_answers = False
    assert task.answer([passage])[0].answers == folded
    assert all(torch.equal(p, base[n]) for n, p in task.inner.model.named_parameters() if "lora_" not in n)
    from seal_kit.adapters import AdapterSlot

    other = AdapterSlot.add(task.inner.model, "other", InnerLoopConfig(rank=4))
    task.inner.model.set_adapter(other.name)
    assert not task._merge_answers()  # another slot answering: left to peft
    task.inner.model.set_adapter(task.inner.slot.name)
    with task.inner.base_model():  # adapters off: folding nothing, the base answers
        with task.inner.slot.merged():
            assert all(torch.equal(p, base[n]) for n, p in task.inner.model.named_parameters() if "lora_" not in n)


def test_a_run_resumed_in_another_dtype_is_refused(tmp_path):
    first = start_run("quickstart", tmp_path, config={"MODEL": "tiny"})
    first.note_model(load_model("tiny", dtype="float32")[0])
    again = start_run("quickstart", tmp_path, config={"MODEL": "tiny"})
    with pytest.raises(ValueError, match=r"computed in float32 before; this session loaded the model in bfloat16 .* "
                                         r"give DTYPE='float32' to resume"):
        again.note_model(quietly(dtype="bfloat16")[0])
    again.note_model(load_model("tiny", dtype="float32")[0])  # the same dtype resumes
    sessions = json.loads((tmp_path / "provenance.json").read_text())["sessions"]
    assert [s["model"]["dtype"] for s in sessions] == ["float32", "float32"]


def test_doctor_names_the_machine_and_what_auto_picks(capsys):
    facts = examine(measure=True, n=64)
    assert facts["cores"] >= 1 and facts["auto_dtype"] in ("float32", "bfloat16")
    assert facts["gflops"]["cpu"]["float32"] > 0 and facts["gflops"]["cpu"]["bfloat16"] > 0
    assert "matmul float32" in machine_line(facts) and "DTYPE='auto' computes in" in describe(facts)
    assert main(["doctor", "--json", "--no-measure"]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    shown = json.loads(line)
    assert shown["cpu_native_bf16"] == precision.native_bf16("cpu")[0] and "gflops" not in shown
