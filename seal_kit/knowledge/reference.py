"""Reference data: the SEAL authors' own passages, self-edits, judged answers and SFT sets, as kit types.

    from seal_kit.knowledge.reference import load_graded, load_reference_passages, load_reference_self_edits, load_sft
    passages = load_reference_passages("seal-eval")    # the paper's 200 evaluation passages, seal-eval-000..199
    edits = load_reference_self_edits("gpt4_1")        # GPT-4.1's 5 self-edits per passage, as generate_self_edits'
    judged = load_graded("iter2")                      # one row per judged answer; judged.attrs["overall"] as reported
    pairs = load_sft(0)                                # the generator's SFT pairs after ReST-EM round 0

The files were published with the SEAL code (github.com/Continual-Intelligence/SEAL, MIT licence; its
LICENSE travels with every copy). `reference_file(name)` looks for one in this order, first hit wins:
1. `$SEAL_KIT_REFERENCE`, a folder laid out like MANIFEST's names (self_edits/, graded/, sft/);
2. `shared/data/seal_reference` in a folder above the working directory or above this package (the
   project's shared data beside the checkout, so notebooks/ finds it too); `$SEAL_KIT_REFERENCE_SEARCH=0`
   or `search=False` skips this step;
3. the cache, `cache_dir()/seal_reference`;
4. a download from `$SEAL_KIT_REFERENCE_URL` (default: the repository's raw files at the pinned commit)
   into the cache, refused unless its sha256 is MANIFEST's.
Passage ids are stable so reference self-edits and verdicts join our own runs: "seal-eval-NNN" in the
paper's order; "seal-train-NNN" for the ReST-EM training passages, round 0's 100 (000-099) then round 1's
50 (100-149), which are other passages (no context in common), so both rounds' sets are kept.
The paper's single-passage runs judged each passage's first self-edit only (sample 0), and each run
re-judged the base model, so the baseline differs a little between conditions; CPT runs pool all five.
"""
from __future__ import annotations

import json
import math
import reprlib
from pathlib import Path

import pandas as pd

from .passages import DataError, Passage, parse_passages
from .reference_files import MANIFEST, ReferenceUnavailable, reference_dir, reference_file  # noqa: F401 (the API)

# The paper's five self-edit prompts (prompts.SELF_EDIT_PROMPTS' names) and the file suffix each was published
# under; every one has a run before RL ("base", Qwen2.5-7B) and after two ReST-EM rounds ("iter2").
PROMPTS = {"implications": None, "implications-long": "long", "implications-very-long": "very-long",
           "rewrite": "rewrite", "self-qa": "self-qa"}
ROUNDS = ("base", "iter2")


def _prompt_set(prompt: str, rnd: str) -> str:
    """Our name of one prompt's self-edits before RL or after: "rewrite-iter2"; the implications prompt's are
    the paper's headline sets, named "base" and "iter2" as before ("implications-base" is accepted too)."""
    return rnd if PROMPTS[prompt] is None else f"{prompt}-{rnd}"


PROMPT_SETS = {(p, r): _prompt_set(p, r) for p in PROMPTS for r in ROUNDS}  # (prompt, round) -> set name
ALIASES = {f"implications-{r}": r for r in ROUNDS}
# dataset file -> (passage-id prefix, number of its first passage); iter1's passages follow iter0's 100
_IDS = {"base_val.json": ("seal-eval", 0), "gpt4_1_val.json": ("seal-eval", 0), "iter2_val.json": ("seal-eval", 0),
        "naive_val.json": ("seal-eval", 0), "iter0_train.json": ("seal-train", 0),
        "iter1_train.json": ("seal-train", 100),
        **{f"{r}_val_prompt-{s}.json": ("seal-eval", 0) for r in ROUNDS for s in PROMPTS.values() if s}}
SELF_EDIT_SETS = {"base": "self_edits/base_val.json", "gpt4_1": "self_edits/gpt4_1_val.json",
                  "iter2": "self_edits/iter2_val.json", "iter0": "self_edits/iter0_train.json",
                  "iter1": "self_edits/iter1_train.json",
                  # very-long's self-edit file was not published: its graded runs carry the edit they judged
                  **{PROMPT_SETS[p, r]: (f"graded/prompts/{r}_prompt-{s}.json" if s == "very-long"
                                         else f"self_edits/prompts/{r}_val_prompt-{s}.json")
                     for p, s in PROMPTS.items() if s for r in ROUNDS}}
PASSAGE_SETS = {"seal-eval": ("base",), "seal-train": ("iter0", "iter1")}
# graded run name -> file under graded/; the single-passage runs of every prompt share their self-edits' names
GRADED_FILES = {**{name: f"graded/{name}.json" for name in ("base", "naive", "gpt4_1", "iter2", "cpt_base",
                                                            "cpt_naive", "cpt_gpt4_1", "cpt_iter2")},
                **{PROMPT_SETS[p, r]: f"graded/prompts/{r}_prompt-{s}.json" for p, s in PROMPTS.items() if s
                   for r in ROUNDS}}
GRADED = tuple(GRADED_FILES)
SELF_EDIT_COLUMNS = ["passage_id", "title", "sample", "prompt", "self_edit", "tokens", "seconds"]
GRADED_COLUMNS = ["condition", "passage", "passage_id", "title", "sample", "rep", "question", "answer", "kind",
                  "prediction", "reference_correct"]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def _get(where: str, obj, key: str, kind: type, expected: str):
    """obj[key] if it is a `kind`; else an error naming the place, the field and what is accepted."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        state = "missing" if not isinstance(obj, dict) or key not in obj else f"invalid ({reprlib.repr(value)})"
        raise DataError(f"{where}: field {key!r} is {state}; expected {expected}")
    return value


def _ids(dataset: str, n: int) -> list[str]:
    prefix, first = _IDS.get(Path(dataset or "").name, (None, 0))
    return [f"{prefix}-{first + i:03d}" if prefix else str(i) for i in range(n)]


def _self_edit_set(which: str) -> tuple[list[dict], list[Passage]]:
    """The raw items of one self-edit set, checked, with their passages under our ids."""
    path = reference_file(SELF_EDIT_SETS[which])
    items = _read_json(path)
    if isinstance(items, dict) and isinstance(items.get("articles"), list):  # a graded run: the edits it judged
        ids = _ids(items.get("dataset"), len(items["articles"]))
        items = [{**it, "id": pid, "completions": [c.get("text") if isinstance(c, dict) else c for c in judged],
                  "questions": [{"question": q.get("question"), "answer": q.get("answer")}
                                for q in (judged[0].get("questions") or [] if judged and isinstance(judged[0], dict)
                                          else [])]}
                 if isinstance(it, dict) and isinstance(judged := it.get("completions") or [], list) else it
                 for it, pid in zip(items["articles"], ids)]
    elif isinstance(items, list):
        ids = _ids(path.name, len(items))
        items = [{**it, "id": pid} if isinstance(it, dict) else it for it, pid in zip(items, ids)]
    passages = parse_passages(items, str(path))
    for i, (item, p) in enumerate(zip(items, passages)):
        where = f"{path}: item {i} ({p.title!r})"
        completions = _get(where, item, "completions", list, "a list of self-edit strings")
        if not all(isinstance(c, str) for c in completions):
            raise DataError(f"{where}: field 'completions' holds a non-string; expected a list of self-edit strings")
        _get(where, item, "prompt", str, "the prompt string that produced the completions")
    return items, passages


def set_name(name: str) -> str:
    """A set's name as SELF_EDIT_SETS and GRADED spell it: without "seal-reference:", aliases resolved."""
    name = str(name).removeprefix("seal-reference:")
    return ALIASES.get(name, name)


def load_reference_passages(name: str) -> list[Passage]:
    """"seal-eval": the paper's 200 evaluation passages; "seal-train": its 150 ReST-EM training passages."""
    if name not in PASSAGE_SETS:
        raise DataError(f"{name!r} is not a reference passage set; accepted: 'seal-eval' (200 SQuAD dev passages, "
                        "974 questions) or 'seal-train' (150 SQuAD train passages of the two ReST-EM rounds)")
    return [p for which in PASSAGE_SETS[name] for p in _self_edit_set(which)[1]]


def load_reference_self_edits(which: str, passages=None) -> pd.DataFrame:
    """The authors' self-edits as generate_self_edits returns ours, optionally for some passages (or ids) only.

    `tokens` is NaN (their generator's token counts were not published, and ours would count differently);
    `seconds` is 0.0, since no time is spent producing them here and run-time totals stay right."""
    which = set_name(which)
    if which not in SELF_EDIT_SETS:
        raise DataError(f"{which!r} is not a reference self-edit set; accepted: "
                        f"{', '.join(SELF_EDIT_SETS)} (also as 'seal-reference:<set>')")
    items, parsed = _self_edit_set(which)
    table = pd.DataFrame([{"passage_id": p.id, "title": p.title, "sample": s, "prompt": item["prompt"],
                           "self_edit": text, "tokens": math.nan, "seconds": 0.0}
                          for item, p in zip(items, parsed) for s, text in enumerate(item["completions"])],
                         columns=SELF_EDIT_COLUMNS)
    if passages is None:
        return table
    wanted = [p.id if isinstance(p, Passage) else str(p) for p in passages]
    if unknown := [pid for pid in wanted if pid not in set(table.passage_id)]:
        raise DataError(f"{which}: no reference self-edits for passage id(s) {unknown[:5]}; this set covers "
                        f"{parsed[0].id} .. {parsed[-1].id}")
    order = {pid: k for k, pid in enumerate(wanted)}  # rows follow the passages given, as generate_self_edits' do
    table = table[table.passage_id.isin(order)]
    return table.sort_values("passage_id", key=lambda ids: ids.map(order), kind="stable").reset_index(drop=True)


def _single_passage_rows(path: Path, data: dict) -> list[dict]:
    """A query_server run: per article, per self-edit, per question, the baseline and adapter answers."""
    articles = _get(str(path), data, "articles", list, "a list of judged articles")
    rows = []
    for i, (art, pid) in enumerate(zip(articles, _ids(data.get("dataset"), len(articles)))):
        title = _get(f"{path}: articles[{i}]", art, "title", str, "a string")
        where = f"{path}: articles[{i}] ({title!r})"
        for s, comp in enumerate(_get(where, art, "completions", list, "a list of judged self-edits")):
            for j, q in enumerate(_get(f"{where}.completions[{s}]", comp, "questions", list, "a list of questions")):
                at = f"{where}.completions[{s}].questions[{j}]"
                base = {"passage": i, "passage_id": pid, "title": title, "sample": s,
                        "question": _get(at, q, "question", str, "a string"),
                        "answer": _get(at, q, "answer", str, "a string")}
                base["rep"] = q.get("rep", 0)  # repeated fine-tune + judge cycles of one self-edit
                rows += [{**base, "kind": kind, "prediction": _get(at, q, f"{kind}_answer", str, "the model's answer"),
                          "reference_correct": _get(at, q, f"{kind}_correct", bool, "GPT-4.1's verdict, true or false")}
                         for kind in ("baseline", "adapter")]
    return rows


def _cpt_rows(path: Path, data: dict) -> list[dict]:
    """A CPT run: one model for all 200 passages, so answers come in the seal-eval question order."""
    reply = _get(str(path), data, "server_reply", dict, "the judged answers of the run")
    asked = [(i, p, qa) for i, p in enumerate(load_reference_passages("seal-eval")) for qa in p.questions]
    lists = {}
    for key in ("baseline_texts", "baseline_correct", "adapter_texts", "adapter_correct"):
        lists[key] = _get(f"{path}: server_reply", reply, key, list, f"a list of {len(asked)} entries")
        if len(lists[key]) != len(asked):
            raise DataError(f"{path}: server_reply.{key} has {len(lists[key])} entries; expected {len(asked)}, "
                            "one per seal-eval question")
    rows = []
    for n, (i, p, qa) in enumerate(asked):
        for kind in ("baseline", "adapter"):
            text, verdict = lists[f"{kind}_texts"][n], lists[f"{kind}_correct"][n]
            if not isinstance(text, str) or not isinstance(verdict, bool):
                raise DataError(f"{path}: server_reply.{kind}_texts/{kind}_correct[{n}] is invalid "
                                f"({reprlib.repr(text)}, {verdict!r}); expected a string and true/false")
            rows.append({"passage": i, "passage_id": p.id, "title": p.title, "sample": pd.NA, "rep": 0,
                         "question": qa.question, "answer": qa.answer, "kind": kind, "prediction": text,
                         "reference_correct": verdict})
    return rows


def load_graded(source: str | Path) -> pd.DataFrame:
    """One row per judged answer of a reference run (a GRADED name or a file); `attrs` holds `overall` etc.

    `sample` is the self-edit's index in the run (<NA> for CPT runs, which pool all self-edits);
    `reference_correct` is the authors' judge's (GPT-4.1's) verdict."""
    if set_name(source) in GRADED:
        path, condition = reference_file(GRADED_FILES[set_name(source)]), set_name(source)
    elif Path(source).expanduser().is_file():
        path, condition = Path(source).expanduser(), Path(source).stem
    else:
        raise DataError(f"{source}: neither a reference run ({', '.join(GRADED)}) nor a file")
    data = _read_json(path)
    if isinstance(data, dict) and "server_reply" in data:
        rows = _cpt_rows(path, data)
    elif isinstance(data, dict):
        rows = _single_passage_rows(path, data)
    else:
        raise DataError(f"{path}: expected a JSON object with 'articles' (single-passage run) or 'server_reply' "
                        f"(CPT run), got {type(data).__name__}")
    table = pd.DataFrame([{"condition": condition, **row} for row in rows], columns=GRADED_COLUMNS)
    table["sample"] = table["sample"].astype("Int64")
    table.attrs.update(overall=data.get("overall", {}), lora_params=data.get("lora_params", {}), source=str(path))
    return table


def load_sft(iteration: int) -> pd.DataFrame:
    """The generator's SFT pairs (prompt, completion) built after ReST-EM round 0 or 1 (best of 5 per passage)."""
    if iteration not in (0, 1):
        raise DataError(f"no reference SFT set for round {iteration!r}; accepted: 0 or 1")
    path = reference_file(f"sft/sft_best1of5_iter{iteration}.jsonl")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {n}: not valid JSON ({err})") from err
            rows.append({key: _get(f"{path}: line {n}", item, key, str, "a string")
                         for key in ("prompt", "completion")})
    return pd.DataFrame(rows, columns=["prompt", "completion"])


# --- Table 2 replayed: the paper's self-edit sets as conditions of our own runs -------------------------
TABLE2_SETS = ("base", "gpt4_1", "iter2")  # Qwen2.5-7B before RL, GPT-4.1, SEAL after two ReST-EM rounds
EVAL_SETS = tuple(dict.fromkeys([*TABLE2_SETS, *PROMPT_SETS.values()]))  # every published set for the evaluation passages
# our condition -> (the paper's graded run behind its figure, whose answers): "naive" trained on the passage only
PAPER_RUNS = {"base": ("base", "baseline"), "passage": ("naive", "adapter"),
              **{f"seal-reference:{s}": (s, "adapter") for s in EVAL_SETS}}


def edits_per_passage(name: str) -> int:
    """How many self-edits per passage a set holds: 5, or 1 where only the judged one was published."""
    return 1 if SELF_EDIT_SETS[set_name(name)].startswith("graded/") else 5


def self_edit_sets(spec: str, data: str, k: int) -> list[str]:
    """The reference sets a SELF_EDITS value asks for: "own" -> none; "seal-reference" -> all of Table 2's;
    "seal-reference:gpt4_1,rewrite-iter2" -> those (any of EVAL_SETS, "implications-base" for "base").
    They exist for the paper's evaluation passages only."""
    source, _, chosen = str(spec).partition(":")
    if spec == "own":
        return []
    if source != "seal-reference":
        raise ValueError(f"SELF_EDITS={spec!r}: expected \"own\", \"seal-reference\" or \"seal-reference:<sets>\" "
                         f"with sets from {', '.join(EVAL_SETS)}, comma-separated")
    sets = [set_name(s.strip()) for s in chosen.split(",") if s.strip()] or list(TABLE2_SETS)
    if unknown := [s for s in sets if s not in EVAL_SETS]:
        raise ValueError(f"SELF_EDITS={spec!r}: no reference set {unknown[0]!r}; choose from {', '.join(EVAL_SETS)}")
    if short := [s for s in sets if k > edits_per_passage(s)]:
        raise ValueError(f"SELF_EDITS={spec!r}: {short[0]!r} holds {edits_per_passage(short[0])} self-edit per "
                         f"passage (only the judged one was published), but K={k}; set K = 1")
    if str(data) != "seal-eval":
        raise ValueError(f"SELF_EDITS={spec!r} trains on the paper's self-edits, written for its evaluation "
                         f"passages, but DATA={str(data)!r}. Set DATA = \"seal-eval\" (or run with --profile "
                         "paper-replay), or keep these passages with SELF_EDITS = \"own\"")
    if not 1 <= k <= 5:
        raise ValueError(f"K={k}: with SELF_EDITS={spec!r} K counts the paper's self-edits per passage "
                         "(the first K of its 5); choose 1 to 5 (1 is the paper's protocol)")
    return sets


def reference_edits(sets: list[str], passages, k: int) -> pd.DataFrame:
    """The first `k` self-edits per passage of each set, one table with a `condition` column per set."""
    tables = [load_reference_self_edits(s, passages).assign(condition=f"seal-reference:{s}") for s in sets]
    return pd.concat([t[t["sample"] < k] for t in tables], ignore_index=True)


def paper_accuracy(condition: str, passage_ids: list[str]) -> dict:
    """The paper's figure for one of our conditions: GPT-4.1's verdicts averaged per passage over
    `passage_ids` (like for like with a run on those passages) and over all 200 as published; None
    where the paper has no such condition."""
    if condition not in PAPER_RUNS:
        return {"paper_these_passages": None, "paper_all_200": None}
    run, kind = PAPER_RUNS[condition]
    graded = load_graded(run)
    here = graded[(graded.kind == kind) & graded.passage_id.isin(passage_ids)]
    return {"paper_these_passages": float(here.groupby("passage_id").reference_correct.mean().mean()),
            "paper_all_200": graded.attrs["overall"][f"{kind}_mean_accuracy"]}


# --- the paper's kept self-edits, to warm-start a generator ---------------------------------------------
WARM_START_SETS = {"sft0": 0, "sft1": 1}  # what ReST-EM kept after the paper's round 0 and round 1


def kept_edits(iteration: int) -> pd.DataFrame:
    """The self-edits the paper's ReST-EM kept in round `iteration` (its SFT set, best of 5 per passage) with
    the seal-train passage each was written for: columns passage_id, self_edit. The SFT prompts are the
    reference layout's implications prompt; only their passage is kept, so a generator is taught these
    edits under whatever prompt it is sampled with."""
    by_context = {p.context: p.id for p in load_reference_passages("seal-train")}
    rows = []
    for n, (prompt, completion) in enumerate(zip(*load_sft(iteration).to_dict("list").values())):
        _, found, rest = prompt.partition("\n\nPassage:\n")
        context = rest.partition("\n")[2].rsplit("\n\n", 1)[0]
        if not found or context not in by_context:
            raise DataError(f"sft/sft_best1of5_iter{iteration}.jsonl: line {n + 1}: its prompt holds no seal-train "
                            "passage as 'Passage:\\n<title>\\n<context>\\n\\n<cue>'")
        rows.append({"passage_id": by_context[context], "self_edit": completion})
    return pd.DataFrame(rows, columns=["passage_id", "self_edit"])


def warm_start_edits(spec: str) -> list[pd.DataFrame]:
    """The kept edits a GENERATOR_WARM_START value names, one table per warm-started round (`kept_edits`):
    "seal-reference:sft0" -> round 0's; "seal-reference:sft0,sft1" -> round 0's, then round 1's for the
    next update; "seal-reference:sft0+sft1" -> both pooled into one update."""
    source, _, chosen = str(spec).partition(":")
    rounds = [[s.strip() for s in part.split("+") if s.strip()] for part in chosen.split(",")]
    if source != "seal-reference" or not all(rounds) or any(s not in WARM_START_SETS for r in rounds for s in r):
        raise ValueError(f"GENERATOR_WARM_START={spec!r}: expected \"seal-reference:<sets>\" with sets from "
                         f"{', '.join(WARM_START_SETS)} (the paper's kept edits after its round 0 and round 1): "
                         "comma-separated for one update each, '+' to pool them into one")
    return [pd.concat([kept_edits(WARM_START_SETS[s]) for s in sets], ignore_index=True) for sets in rounds]
