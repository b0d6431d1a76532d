"""`seal-kit export`: a ReST-EM run's generator and self-edits, read back with plain peft, datasets and pandas."""
import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from seal_kit.cli import main
from seal_kit.export import EMBEDDED_HUB_ID, hub_id
from seal_kit.models import load_model
from test_notebooks import run_notebook


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory):
    """Two ReST-EM rounds on the tiny model whose generator updates merge into the base (the paper's view)."""
    run_dir = tmp_path_factory.mktemp("run")
    run_notebook("03_rest_em.ipynb", run_dir, MODEL="tiny", ROUNDS=2, GENERATOR_UPDATE="merge", SEED=3)
    return run_dir


@pytest.mark.slow
def test_merged_updates_export_as_one_adapter_plain_peft_loads(merged_run, tmp_path, capsys):
    from peft import PeftModel

    assert main(["export", str(merged_run), str(tmp_path / "out"), "--merged"]) == 0
    assert "adapter: " in capsys.readouterr().out
    adapter = tmp_path / "out" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    rounds = [json.loads((merged_run / f"round-{r}" / "generator" / "generator" / "adapter_config.json").read_text())
              for r in (0, 1)]
    assert config["r"] == 2 * rounds[0]["r"] and config["lora_alpha"] == 2 * rounds[0]["lora_alpha"]
    assert config["base_model_name_or_path"] is None  # "tiny" has no hub id

    base, base_tokenizer = load_model("tiny", device="cpu", seed=3)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    # Expected: the base plus each round's saved update, scale * B @ A, summed (as merge mode applied them).
    scale = rounds[0]["lora_alpha"] / rounds[0]["r"]
    updates = [load_file(str(merged_run / f"round-{r}" / "generator" / "generator" / "adapter_model.safetensors"))
               for r in (0, 1)]
    checked = 0
    for key in updates[0]:
        if ".lora_A." not in key:
            continue
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        delta = sum(scale * u[key.replace("lora_A", "lora_B")] @ u[key] for u in updates)
        assert torch.allclose(dict(model.named_parameters())[name], before[name] + delta, atol=1e-5), name
        checked += 1
    assert checked > 0 and any(u[k].abs().sum() > 0 for u in updates for k in u if "lora_B" in k)

    merged = tmp_path / "out" / "merged"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(merged))
    tokenizer = AutoTokenizer.from_pretrained(str(merged))  # saved beside the weights: the base's own
    text = "Velmora island's marmots, 1843."
    assert len(tokenizer) == len(base_tokenizer) and tokenizer(text)["input_ids"] == base_tokenizer(text)["input_ids"]
    assert reloaded.config.vocab_size == base.config.vocab_size
    name = next(n for n, _ in reloaded.named_parameters() if n.endswith("q_proj.weight"))
    assert torch.allclose(dict(reloaded.named_parameters())[name], dict(model.named_parameters())[name])


@pytest.mark.slow
def test_self_edits_export_as_a_prompt_completion_dataset(merged_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    assert main(["export", str(merged_run), str(tmp_path / "out")]) == 0
    loaded = datasets.load_dataset(str(tmp_path / "out" / "dataset"))
    assert set(loaded) == {"candidates", "kept"}
    assert {"prompt", "completion", "reward", "kept", "round"} <= set(loaded["kept"].column_names)
    candidates = pd.read_parquet(tmp_path / "out" / "dataset" / "candidates.parquet")
    sampled = sum(len(pd.read_parquet(merged_run / f"round-{r}" / "self_edits.parquet")) for r in (0, 1, 2))
    assert len(candidates) == sampled and candidates.completion.map(type).eq(str).all()
    kept = pd.concat([pd.read_parquet(merged_run / f"round-{r}" / "kept.parquet") for r in (0, 1)])
    assert len(loaded["kept"]) == len(kept) == candidates.kept.sum()
    assert sorted(loaded["kept"]["completion"]) == sorted(kept.self_edit)
    scored = candidates[candidates.split == "train"].reward
    assert scored.notna().all() and scored.between(0, 1).all()


def test_export_names_what_is_wrong(tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent"), str(tmp_path / "out")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    assert "holds no config.yaml: not a run directory" in capsys.readouterr().err
    assert hub_id("embedded") == EMBEDDED_HUB_ID and hub_id("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"


def test_push_to_hub_sends_the_adapter_and_the_dataset(monkeypatch, tmp_path):
    import huggingface_hub

    from seal_kit import export

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, repo_type, exist_ok):
            calls.append(("create", repo_id, repo_type))

        def upload_folder(self, folder_path, repo_id, repo_type):
            calls.append(("upload", folder_path, repo_id, repo_type))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    urls = export.push(tmp_path, "me/seal")
    assert calls == [("create", "me/seal", "model"), ("upload", str(tmp_path / "adapter"), "me/seal", "model"),
                     ("create", "me/seal-self-edits", "dataset"),
                     ("upload", str(tmp_path / "dataset"), "me/seal-self-edits", "dataset")]
    assert urls == ["https://huggingface.co/me/seal", "https://huggingface.co/datasets/me/seal-self-edits"]
