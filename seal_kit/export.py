"""Export: a ReST-EM run's generator and self-edits in the formats other tools read.

    seal-kit export outputs/runs/<time>-03_rest_em exported/           # adapter/ + dataset/
    seal-kit export RUN_DIR exported/ --merged                         # + merged/, a plain transformers model
    seal-kit export RUN_DIR exported/ --push-to-hub me/seal-smollm     # + the hub (model and dataset repos)

    from seal_kit.export import export
    written = export("outputs/runs/...", "exported", merged=False)

- `adapter/`: the final generator as one standard peft LoRA adapter, loadable with
  `PeftModel.from_pretrained(base, "exported/adapter")`, whose `base_model_name_or_path` is the hub id of
  the model the run adapted ("embedded" is HuggingFaceTB/SmolLM2-135M-Instruct). With `update: stack` that
  is the last round's adapter; with `update: merge` each round's update was folded into the base weights
  before the next was trained, and the export joins them exactly: the updates' LoRA factors side by side
  (rank and alpha times the number of rounds, so the scale is unchanged) sum to the same weight change.
- `merged/` (`--merged`): the base model with that adapter folded in, and its tokenizer.
- `dataset/`: every sampled self-edit (`candidates`) and those the selection kept (`kept`, what the
  generator was trained on), one parquet file per split with `prompt`/`completion` columns (TRL's
  prompt-completion format) beside round, split, context_id, sample, reward (mean over the run's seeds)
  and kept; `datasets.load_dataset("exported/dataset")` reads both splits (its README names them).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import torch
import yaml
from safetensors.torch import load_file, save_file

from .generator import round_dir, saved_generator
from .models import EMBEDDED_NAME

EMBEDDED_HUB_ID = f"HuggingFaceTB/{EMBEDDED_NAME}"  # where the embedded model's weights come from
COLUMNS = ["prompt", "completion", "round", "split", "context_id", "sample", "reward", "kept"]


def hub_id(model: str) -> str | None:
    """The id the hub knows a run's MODEL by: the embedded model's source, a hub id as is, None for
    "tiny" (random weights) and a local folder as its path."""
    if model == "embedded":
        return EMBEDDED_HUB_ID
    return None if model == "tiny" else str(model)


def _run_config(run_dir: Path) -> dict:
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{run_dir} holds no config.yaml: not a run directory; give the RUN_DIR of a "
                                "03_rest_em or 04_arc_few_shot run")
    return yaml.safe_load(config.read_text()) or {}


def _adapter_files(update: Path) -> Path:
    """The folder of a saved generator update holding adapter_config.json (peft nests a named adapter)."""
    found = sorted(update.rglob("adapter_config.json"))
    if not found:
        raise FileNotFoundError(f"{update} holds no saved adapter (adapter_config.json)")
    return found[0].parent


def write_adapter(run_dir: str | Path, out: str | Path) -> Path:
    """The run's final generator as one standard adapter in `out` (see the module docstring)."""
    run_dir, out = Path(run_dir), Path(out)
    generator, updates = saved_generator(run_dir)
    if not updates:
        raise ValueError(f"{run_dir} has no finished generator update yet (no round-*/summary.json says updated); "
                         "export after a round has finished")
    folders = [_adapter_files(u) for u in updates] if generator.update == "merge" else [_adapter_files(updates[-1])]
    config = json.loads((folders[0] / "adapter_config.json").read_text())
    if config.get("use_rslora"):
        raise ValueError("joining rsLoRA updates is not supported (their scale depends on the rank)")
    weights = [load_file(str(f / "adapter_model.safetensors")) for f in folders]
    joined = {}
    for key in weights[0]:  # lora_A: (r, in) stacked along the rank; lora_B: (out, r) side by side
        joined[key] = torch.cat([w[key] for w in weights], dim=0 if ".lora_A." in key else 1).contiguous()
    n = len(folders)
    config |= {"r": config["r"] * n, "lora_alpha": config["lora_alpha"] * n, "inference_mode": True,
               "base_model_name_or_path": hub_id(str(_run_config(run_dir).get("MODEL", "")))}
    out.mkdir(parents=True, exist_ok=True)
    save_file(joined, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    rounds = ", ".join(u.parent.name for u in updates)
    (out / "README.md").write_text(
        f"---\nlibrary_name: peft\nbase_model: {config['base_model_name_or_path']}\ntags: [seal, rest-em, lora]\n---\n"
        f"# SEAL generator (seal-kit export)\n\nThe self-edit generator of a seal-kit ReST-EM run: a LoRA adapter "
        f"on `{config['base_model_name_or_path']}` ({generator.update} updates from {rounds}; rank {config['r']}).\n")
    return out


def write_merged(adapter: Path, out: Path, model: str, seed: int = 0) -> Path:
    """The base model (as the run loaded it) with the adapter folded in, and its tokenizer, in `out`."""
    from peft import PeftModel

    from .models import load_model

    base, tokenizer = load_model(model, device="cpu", seed=seed)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def self_edit_table(run_dir: str | Path) -> pd.DataFrame:
    """Every sampled self-edit of a ReST-EM run with its mean reward and whether it was kept (COLUMNS)."""
    run_dir = Path(run_dir)
    tables, r = [], 0
    while (path := round_dir(run_dir, r) / "self_edits.parquet").exists():
        edits = pd.read_parquet(path)
        kept_path = round_dir(run_dir, r) / "kept.parquet"
        kept = pd.read_parquet(kept_path) if kept_path.exists() else pd.DataFrame(columns=["context_id", "sample"])
        keys = set(zip(kept.context_id, kept["sample"]))
        tables.append(edits.assign(kept=[(c, s) in keys for c, s in zip(edits.context_id, edits["sample"])]))
        r += 1
    if not tables:
        raise ValueError(f"{run_dir} holds no round-*/self_edits.parquet: not a ReST-EM run directory (or no round "
                         "has sampled yet)")
    table = pd.concat(tables, ignore_index=True).rename(columns={"self_edit": "completion"})
    scored = run_dir / "candidates.jsonl"
    if scored.exists():
        rows = [json.loads(line) for line in scored.read_text().splitlines() if line.strip()]
        rewards = pd.DataFrame(rows).groupby(["round", "split", "context_id", "sample"]).reward.mean().rename("reward")
        table = table.join(rewards, on=["round", "split", "context_id", "sample"])
    else:
        table["reward"] = float("nan")
    return table[COLUMNS]


def write_dataset(run_dir: str | Path, out: str | Path) -> Path:
    """`candidates` and `kept` as parquet splits in `out`, with the README that names them for `datasets`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = self_edit_table(run_dir)
    table.to_parquet(out / "candidates.parquet", index=False)
    table[table.kept].reset_index(drop=True).to_parquet(out / "kept.parquet", index=False)
    (out / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: candidates\n    path: candidates.parquet\n"
        "  - split: kept\n    path: kept.parquet\ntags: [seal, self-edits]\n---\n"
        "# SEAL self-edits (seal-kit export)\n\nEvery self-edit a seal-kit ReST-EM run sampled (`candidates`) and "
        "those its selection kept (`kept`), as `prompt`/`completion` pairs with their round, context and reward.\n")
    return out


def push(out: Path, repo: str) -> list[str]:
    """Upload `out/adapter` to the model repo `repo` and `out/dataset` to the dataset repo `repo`-self-edits."""
    from huggingface_hub import HfApi

    api, urls = HfApi(), []
    for folder, repo_id, kind in ((out / "adapter", repo, "model"), (out / "dataset", f"{repo}-self-edits", "dataset")):
        api.create_repo(repo_id, repo_type=kind, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=kind)
        urls.append(f"https://huggingface.co/{'datasets/' if kind == 'dataset' else ''}{repo_id}")
    return urls


def export(run_dir: str | Path, out: str | Path, merged: bool = False, push_to_hub: str | None = None) -> dict:
    """Write adapter/, dataset/ (and merged/) for a ReST-EM run into `out`; returns what went where."""
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    config = _run_config(run_dir)
    if out.resolve() == run_dir.resolve() or out.resolve().is_relative_to(run_dir.resolve()):
        raise ValueError(f"export into {out}: choose a folder outside the run directory {run_dir}")
    written = {"adapter": str(write_adapter(run_dir, out / "adapter")),
               "dataset": str(write_dataset(run_dir, out / "dataset"))}
    if merged:
        target = out / "merged"
        shutil.rmtree(target, ignore_errors=True)
        seed = config.get("SEED", (config.get("rest_em") or {}).get("seed", 0))  # only "tiny"'s random weights need it
        written["merged"] = str(write_merged(out / "adapter", target, str(config.get("MODEL")), int(seed)))
    if push_to_hub:
        written["hub"] = push(out, push_to_hub)
    return written
