"""Self-edits: the model writes its own fine-tuning data, which becomes training documents.

    from seal_kit.self_edit import SamplingConfig, sample_self_edits, training_documents
    edits = sample_self_edits(model, tokenizer, [{"prompt": text}], SamplingConfig())   # strategies.generate_self_edits: K per passage
    docs = training_documents(edits.self_edit[0], passages[0])   # -> Documents(texts=[...], from_edit=n)

Splitting follows SEAL: on `---` separators, then on lines (one statement per document) and on
`Question N:` markers; a filler first line ("Here are some implications:") is dropped; each
document is prefixed with the title; the passage itself is always one of the documents. Ours also
strips list numbering and bullets, drops pieces under `min_chars` and duplicates. `split="reference"`
splits as the reference code did instead: every non-empty line a document, the first line dropped only
when the second starts with "1.", numbering kept, nothing else filtered.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from .backends import check_backend, generate_with
from .generation import Generation
from .prompts import Context


@dataclass
class SamplingConfig:
    k: int = field(default=5, metadata={"help": "self-edits sampled per passage (paper: 5)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (paper: 1.0)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass (paper: 0.95)"})
    max_new_tokens: int = field(default=256, metadata={"help": "longest self-edit, in tokens"})
    batch_size: int = field(default=8, metadata={"help": "prompts generated together"})
    seed: int = field(default=0, metadata={"help": "torch seed set before sampling"})
    backend: str = field(default="hf", metadata={"help": "hf (transformers) or vllm (GPU, the [vllm] extra)"})
    max_attempts: int = field(default=1, metadata={
        "help": "draws per self-edit until the task accepts one (ARC: until its JSON parses; the reference drew "
                "again without a cap); 1: the first draw as is"})
    constrained: bool = field(default=False, metadata={
        "help": "decode each self-edit under the task's JSON schema so it can only be a valid config (ARC; "
                "lm-format-enforcer with hf, vLLM's structured outputs with vllm); the reference: False"})

    def __post_init__(self):
        check_backend(self.backend, "SamplingConfig")
        if self.max_attempts < 1:
            raise ValueError(f"SamplingConfig.max_attempts must be >= 1 (1: no redraw), got {self.max_attempts}")


def sample_self_edits(model, tokenizer, rows: list[dict], config: SamplingConfig | None = None,
                      progress: bool = True, desc: str = "self-edits", adapter: str | None = None,
                      accept: Callable[[str], bool] | None = None, schema: dict | None = None) -> pd.DataFrame:
    """One sampled self-edit per row (each row a dict with at least "prompt"): the rows come back as a
    DataFrame with `self_edit`, `tokens` and `seconds` added. Deterministic under `config.seed`.
    `accept(text)`: rows whose draw it refuses are drawn again, up to `config.max_attempts` draws in all;
    then `attempts` counts them, `seconds` adds them up, and `accepted` is False where every draw was
    refused. `adapter`: a saved generator adapter folder for the vllm backend (hf samples from `model`).
    `schema`: with `config.constrained`, the JSON schema every draw is decoded under."""
    config = config or SamplingConfig()
    if config.constrained and schema is None:
        raise ValueError("SamplingConfig.constrained needs the task's self-edit schema (ARC's configs have one; "
                         "knowledge self-edits are free text): set constrained=False")

    def draw(indices: list[int], seed: int, label: str) -> list:
        return generate_with(config.backend, model, tokenizer, [rows[i]["prompt"] for i in indices],
                             max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                             batch_size=config.batch_size, seed=seed, desc=label, progress=progress,
                             adapters=[adapter] * len(indices) if adapter else None,
                             json_schema=schema if config.constrained else None)

    outs, attempts = draw(list(range(len(rows))), config.seed, desc), [1] * len(rows)
    for attempt in range(1, config.max_attempts if accept else 1):
        refused = [i for i, o in enumerate(outs) if not accept(o.text)]
        if not refused:
            break
        for i, o in zip(refused, draw(refused, config.seed + attempt, f"{desc}: draw {attempt + 1}")):
            outs[i], attempts[i] = Generation(o.text, o.tokens, outs[i].seconds + o.seconds), attempts[i] + 1
    drawn = [{**r, "self_edit": o.text, "tokens": o.tokens, "seconds": o.seconds} for r, o in zip(rows, outs)]
    if accept:
        drawn = [{**d, "attempts": n, "accepted": accept(d["self_edit"])} for d, n in zip(drawn, attempts)]
    return pd.DataFrame(drawn)


@dataclass
class DocumentConfig:
    split_lines: bool = field(default=True, metadata={"help": "one document per line (SEAL, single passage)"})
    title_prefix: bool = field(default=True, metadata={"help": "start every document with the passage title"})
    include_passage: bool = field(default=True, metadata={"help": "always train on the passage itself too"})
    drop_filler: bool = field(default=True, metadata={"help": "drop a first line that only announces the list"})
    min_chars: int = field(default=12, metadata={"help": "pieces shorter than this are dropped as degenerate"})
    split: str = field(default="kit", metadata={
        "help": "how a self-edit becomes training documents: kit (numbering and fillers stripped, short pieces "
                "dropped) or reference (the reference code's splitting: lines kept as written, the first dropped "
                "only when the second starts with '1.')"})

    def __post_init__(self):
        if self.split not in ("kit", "reference"):
            raise ValueError(f"DocumentConfig.split must be 'kit' or 'reference'; got {self.split!r}")


@dataclass(frozen=True)
class Documents:
    texts: list[str]
    from_edit: int  # how many documents came from the self-edit (0: an empty edit)

    @property
    def empty_edit(self) -> bool:
        return self.from_edit == 0


_QUESTION = re.compile(r"(?=^\s*Question\s*\d+\s*[:.])", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_SEPARATOR = re.compile(r"^\s*-{3,}\s*$", re.MULTILINE)


def split_like_reference(self_edit: str, split_lines: bool = True) -> list[str]:
    """The reference code's split: `---` blocks, then (single passage) one document per non-empty line;
    a first line is dropped only when the second starts with "1." (a heading over a numbered list)."""
    pieces = []
    for block in _SEPARATOR.split(self_edit or ""):
        if not split_lines:
            pieces += [block.strip()] if block.strip() else []
            continue
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if len(lines) > 1 and lines[1].startswith("1."):
            lines = lines[1:]
        pieces += lines
    return pieces


def split_self_edit(self_edit: str, config: DocumentConfig) -> list[str]:
    """The pieces of a self-edit, before title prefix and passage (see module docstring)."""
    if config.split == "reference":
        return split_like_reference(self_edit, config.split_lines)
    pieces = []
    for block in _SEPARATOR.split(self_edit or ""):
        if config.split_lines and _QUESTION.search(block):
            pieces += [p.strip() for p in _QUESTION.split(block)]  # keep each Q/A pair together
        elif config.split_lines:
            lines = [line.strip() for line in block.splitlines() if line.strip()]
            if config.drop_filler and lines and lines[0].strip("*_# ").endswith(":"):  # also "**Implications:**"
                lines = lines[1:]
            pieces += lines
        else:
            pieces.append(block.strip())
    pieces = [_BULLET.sub("", p).strip() for p in pieces]
    return list(dict.fromkeys(p for p in pieces if len(p) >= config.min_chars))  # dedupe, keep order


def passage_document(passage: Context, config: DocumentConfig) -> str:
    """The passage itself as a training document (the 'train on the passage' control uses it alone)."""
    return f"{passage.title}\n{passage.context}" if config.title_prefix else passage.context


def training_documents(self_edit: str, passage: Context, config: DocumentConfig | None = None) -> Documents:
    """Training documents for the inner loop; an empty or degenerate edit yields `empty_edit=True`."""
    config = config or DocumentConfig()
    pieces = split_self_edit(self_edit, config)
    texts = [f"{passage.title}\n{p}" if config.title_prefix else p for p in pieces]
    if config.include_passage:
        texts.append(passage_document(passage, config))
    return Documents(texts, len(pieces))
