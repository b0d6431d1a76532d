"""Edit statistics: what a table of self-edits looks like, edit by edit and as a whole (no model needed).

    from seal_kit.knowledge import edit_stats
    from seal_kit.knowledge.reference import load_reference_passages, load_reference_self_edits
    passages = load_reference_passages("seal-eval")
    edits = load_reference_self_edits("iter2")            # any table with self_edit and passage_id (or context)
    stats = edit_stats.per_edit(edits, passages)          # words, documents, grounding, invented names/numbers
    now = edit_stats.summary(edits, passages)             # their means, and the table's diversity
    before = edit_stats.summary(load_reference_self_edits("base"), passages)
    edit_stats.collapse_warning(before, now)              # a message when diversity fell sharply, else None
    edit_stats.relation_to_gain(stats.assign(gain=gains))  # Spearman of each statistic with the edits' gains
    edit_stats.summary(loop.candidates(r))                # a ReST-EM round's candidates carry their own context

Edits are matched to their passages by `passage_id` (or `context_id`, as ReST-EM candidates name it).
Counting documents imports `seal_kit.self_edit` (and with it torch); nothing else here needs more than pandas.

Per edit:
- `words`: its length in words (no tokenizer: word characters, list numbering and Question/Answer labels
  left out);
- `documents`: how many training documents it becomes (`self_edit.training_documents` with the default
  `DocumentConfig`; the passage adds one more, not counted here);
- `grounding`: the share of its word n-grams (n = 3 by default) that occur in its passage (title included,
  as the self-edit prompt shows it): 1.0 for an edit that only copies, near 0 for one that says everything
  in new words (or says new things);
- `invented`: how often it uses a name (a capitalised word that does not start a sentence) or a number
  (digits) that its passage never uses, `invented_list` those names and numbers (each once), and
  `invented_share` that count over all the names and numbers it uses (`names_numbers`). A paraphrase
  ("four" for "4", "Mongol" for "Mongols") counts as invented: a cue to read the edit, not a verdict.

Over a table, diversity: `distinct_n`, the share of unique n-grams among all n-grams of its edits (lower:
more of the same phrases), and `compression_ratio`, raw bytes over zlib-compressed bytes of the edits
one after another (higher: more repetitive; zlib sees repeats within 32 KB, about 20 edits). Both fall
(or rise) with length and with the number of edits alone, so compare tables of the same passages and
number of edits. SPA (arXiv 2603.22213) reports that RL-trained SEAL edits compress far more than the
prompt's untrained ones: the generator's outputs lose diversity as ReST-EM keeps its best.
"""
from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .passages import Passage

# a label that opens a line: "1.", "2)", "-", "*", "Question 3:", "Answer 3:" (several in a row: "Question 2: 2.")
_LABEL = re.compile(r"^\s*(?:(?:question|answer|q|a)\s*\d+\s*[:.)]|\d{1,3}[.)](?=\s)|[-*\u2022#>]+)\s*", re.IGNORECASE)
_QA_LABEL = re.compile(r"\b(?:question|answer)\s*\d+\s*[:.)]", re.IGNORECASE)  # "Answer 3:" inside a line too
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")  # 20,000 -> 20000
_POSSESSIVE = re.compile(r"['\u2019]s\b", re.IGNORECASE)  # Kublai's -> Kublai
_WORD = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
# a number, or a capitalised word; the first group holds the character that ends the sentence before it (or the
# line break before it), empty when it does not start a sentence
_MENTION = re.compile(r"(?:([\n.!?:;])[^\w\n]*)?\b(\d+(?:\.\d+)?|[A-Z\u00c0-\u00d6\u00d8-\u00de][^\W_]*)")
STATS = ("words", "documents", "grounding", "names_numbers", "invented", "invented_share")


def _clean(text: str) -> str:
    """The text without the labels that open its lines, numbers without thousands commas, words without a
    possessive 's: what every statistic reads."""
    lines = []
    for line in _QA_LABEL.sub("\n", text or "").splitlines():  # a label starts a line of its own
        while label := _LABEL.match(line):
            line = line[label.end():]
        lines.append(line)
    return _POSSESSIVE.sub("", _THOUSANDS.sub("", "\n".join(lines)))


def words(text: str) -> list[str]:
    """The text's words and numbers, lower-cased, labels left out: what lengths and n-grams count."""
    return _WORD.findall(_clean(text).lower())


def names_and_numbers(text: str) -> list[str]:
    """Capitalised words that do not start a sentence (names, mostly) and numbers, in order, repeats kept."""
    return _mentions(_clean(text))


def _mentions(clean: str) -> list[str]:
    return [token for start, token in _MENTION.findall("\n" + clean)  # "\n": the first line starts a sentence too
            if token[0].isdigit() or not start and token != "I"]


def ngrams(tokens: list[str], n: int = 3) -> list[tuple[str, ...]]:
    if n < 1:
        raise ValueError(f"n-grams need n >= 1 words each, got n={n!r}")
    return list(zip(*(tokens[i:] for i in range(n))))


def _grounding(tokens: list[str], source: set, n: int) -> float:
    grams = ngrams(tokens, n)
    return sum(g in source for g in grams) / len(grams) if grams else math.nan


def grounding(self_edit: str, context: str, n: int = 3) -> float:
    """Share of the edit's word n-grams found in the passage; NaN for an edit shorter than n words."""
    return _grounding(words(self_edit), set(ngrams(words(context), n)), n)


def invented(self_edit: str, context: str) -> list[str]:
    """The edit's names and numbers that its passage never uses (case aside), each once, in order."""
    known = set(words(context))
    return list(dict.fromkeys(t for t in names_and_numbers(self_edit) if t.lower() not in known))


def distinct_n(texts: Iterable[str], n: int = 3) -> float:
    """Unique n-grams over all n-grams of the texts (n-grams never cross from one text to the next)."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def compression_ratio(texts: Iterable[str]) -> float:
    """Bytes of the texts, one per line, over their zlib-compressed bytes (level 9): higher, more repetitive."""
    raw = "\n".join(texts).encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else math.nan


def _id_column(table: pd.DataFrame) -> str | None:
    """The column naming each edit's passage: passage_id, or context_id (ReST-EM candidates); None without."""
    return next((c for c in ("passage_id", "context_id") if c in table.columns), None)


def _passages_of(table: pd.DataFrame, passages) -> list[Passage]:
    """The passage behind each row: from `passages` by the row's passage id, else from its own context."""
    key = _id_column(table)
    if passages is not None:
        by_id = dict(passages) if isinstance(passages, Mapping) else {p.id: p for p in passages}
        if key is None:
            raise ValueError("edit statistics with `passages` need a passage_id (or context_id) column to find "
                             "each edit's passage")
        if missing := sorted(set(table[key].astype(str)) - set(by_id)):
            raise ValueError(f"no passage given for {key}(s) {missing[:5]}; pass the passages those edits "
                             "were written for")
        return [by_id[str(pid)] for pid in table[key]]
    if "context" not in table.columns:
        raise ValueError(f"edit statistics need each edit's passage: pass `passages` (with a passage_id column in "
                         f"the table) or give the table a context column; it has {list(table.columns)}")
    ids = table[key] if key else pd.Series("", index=table.index)
    titles = table["title"] if "title" in table.columns else pd.Series("", index=table.index)
    return [Passage(str(i), str(t), str(c), ()) for i, t, c in zip(ids, titles, table["context"])]


def per_edit(table: pd.DataFrame, passages: Iterable[Passage] | Mapping[str, Passage] | None = None,
             n: int = 3) -> pd.DataFrame:
    """One row per self-edit of `table` (same index), its identifying columns kept, with the STATS columns
    and `invented_list`. `passages`: Passage objects (or an id -> Passage mapping) for the table's
    passage_id column; without them, the table's own `context` (and `title`) columns."""
    from ..self_edit import DocumentConfig, training_documents  # the kit's splitting rules (imports torch)

    if "self_edit" not in table.columns:
        raise ValueError(f"edit statistics need a self_edit column; the table has {list(table.columns)}")
    config, sources, rows = DocumentConfig(), {}, []
    for edit, passage in zip(table["self_edit"].fillna(""), _passages_of(table, passages)):
        shown = f"{passage.title}\n{passage.context}"  # the self-edit prompt shows both
        if shown not in sources:  # a passage's words and n-grams once, however many edits it has
            said = words(shown)
            sources[shown] = set(said), set(ngrams(said, n))
        known, source = sources[shown]
        clean = _clean(edit)
        mentioned = _mentions(clean)
        new = [t for t in mentioned if t.lower() not in known]  # repeats kept: shares count every use
        said = _WORD.findall(clean.lower())
        rows.append({"words": len(said), "documents": training_documents(edit, passage, config).from_edit,
                     "grounding": _grounding(said, source, n), "names_numbers": len(mentioned),
                     "invented": len(new), "invented_share": len(new) / len(mentioned) if mentioned else math.nan,
                     "invented_list": list(dict.fromkeys(new))})
    keys = [c for c in ("condition", "prompt", "round", "passage_id", "context_id", "title", "sample")
            if c in table.columns]
    return pd.concat([table[keys], pd.DataFrame(rows, index=table.index,
                                                columns=[*STATS, "invented_list"])], axis=1)


def summary(table: pd.DataFrame, passages: Iterable[Passage] | Mapping[str, Passage] | None = None,
            n: int = 3, stats: pd.DataFrame | None = None) -> dict:
    """The table at a glance: its size, the per-edit statistics' means (`invented_share` pooled: invented
    names and numbers over all those its edits use), and its diversity (`distinct_n`, `compression_ratio`).
    `stats`: `per_edit(table, passages, n)` when it was computed already (it is the slow part)."""
    if stats is None:
        stats = per_edit(table, passages, n)
    elif not stats.index.equals(table.index):
        raise ValueError("summary: `stats` must be per_edit's table for these very edits (the same index)")
    texts = table["self_edit"].fillna("").tolist()
    mentioned = int(stats["names_numbers"].sum())
    return {"n_edits": int(len(table)),
            "n_passages": int(table[_id_column(table)].nunique()) if _id_column(table) else int(len(table)),
            "n": n, "words": float(stats["words"].mean()), "documents": float(stats["documents"].mean()),
            "grounding": float(np.nanmean(stats["grounding"])) if stats["grounding"].notna().any() else math.nan,
            "invented_per_edit": float(stats["invented"].mean()),
            "invented_share": float(stats["invented"].sum() / mentioned) if mentioned else math.nan,
            "distinct_n": distinct_n(texts, n), "compression_ratio": compression_ratio(texts)}


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences (ties share their mean rank); pairs with a
    NaN are left out; NaN when fewer than three pairs remain or either side does not vary."""
    pairs = pd.DataFrame({"x": list(x), "y": list(y)}, dtype=float).dropna()
    if len(pairs) < 3 or pairs.x.nunique() < 2 or pairs.y.nunique() < 2:
        return math.nan
    return float(pairs.x.rank().corr(pairs.y.rank()))


def relation_to_gain(table: pd.DataFrame, gain: str = "gain", by: list[str] | None = None,
                     statistics=("words", "documents", "grounding", "invented", "invented_share")) -> pd.DataFrame:
    """Spearman correlation of each statistic with `gain`, over the rows of each group of `by` (rows: the
    groups, " · "-joined; columns: the statistics; one row "all" without `by`). Where there is no relation,
    a correlation over n rows still scatters around 0 with a standard deviation of about 1/sqrt(n - 1):
    over 200 rows, one under 0.14 in size is within what chance gives (95%)."""
    if missing := [c for c in [gain, *statistics, *(by or [])] if c not in table.columns]:
        raise ValueError(f"relation_to_gain: the table lacks {missing}; it has {list(table.columns)}")
    groups = table.groupby(list(by), sort=False) if by else [(("all",), table)]
    return pd.DataFrame({" · ".join(map(str, key if isinstance(key, tuple) else (key,))):
                         {s: spearman(part[s], part[gain]) for s in statistics} for key, part in groups}).T


def collapse_warning(previous: Mapping, current: Mapping, threshold: float = 0.2) -> str | None:
    """A message when the self-edits' diversity fell sharply from `previous` to `current` (two `summary`
    dicts, say of two ReST-EM rounds on the same passages): distinct-n down, or the compression ratio up,
    by more than `threshold` (a fraction of the previous value); None otherwise."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold is a relative change strictly between 0 and 1 (0.2: a fifth), got {threshold!r}")
    for summary_ in (previous, current):
        if missing := [k for k in ("distinct_n", "compression_ratio") if k not in summary_]:
            raise ValueError(f"collapse_warning compares edit_stats.summary dicts; one lacks {missing}")
    falls = []
    # None is how a NaN comes back from metrics.json
    d0, d1, c0, c1 = (math.nan if v is None else float(v) for v in (
        previous["distinct_n"], current["distinct_n"], previous["compression_ratio"], current["compression_ratio"]))
    if d0 > 0 and d1 < d0 * (1 - threshold):  # NaN (a table without n-grams) compares False: no warning
        falls.append(f"distinct-{current.get('n', 3)} {d0:.3f} -> {d1:.3f} ({d1 / d0 - 1:+.0%})")
    if c0 > 0 and c1 > c0 * (1 + threshold):
        falls.append(f"compression ratio {c0:.2f} -> {c1:.2f} ({c1 / c0 - 1:+.0%})")
    if not falls:
        return None
    return ("self-edit diversity fell sharply: " + "; ".join(falls) + ". The generator may be settling on one "
            "template (SPA, arXiv 2603.22213, reports this of RL-trained SEAL edits); read a few of this round's "
            "edits before training on them")
