"""Reference data: the SEAL authors' own passages, self-edits, judged answers and SFT sets, as kit types.

    from seal_kit.reference import load_graded, load_reference_passages, load_reference_self_edits, load_sft
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

import hashlib
import http.client
import json
import math
import os
import reprlib
import urllib.request
from pathlib import Path

import pandas as pd
from filelock import FileLock
from tqdm.auto import tqdm

from .passages import DataError, Passage, parse_passages
from .models import cache_dir

SEAL_COMMIT = "4cb1e7d"
# Whether raw.githubusercontent.com serves an abbreviated SHA was not checked: if this answers 404,
# put the full 40-digit commit here (the sha256 values below stay valid, they pin the content).
DEFAULT_URL = f"https://raw.githubusercontent.com/Continual-Intelligence/SEAL/{SEAL_COMMIT}"
_KI = "knowledge-incorporation"

# our name -> (path in the SEAL repository, sha256 of the file). Hashes are those of the copies in
# ../shared/data/seal_reference. Upstream paths marked "unverified" were inferred from the authors'
# scripts (which write timestamped names); the other paths are named in the files or in SEAL's docs.
MANIFEST: dict[str, tuple[str, str]] = {
    "LICENSE": ("LICENSE", "ad4011ae1b9ecc3dcb417ac24341f6345d32cd6664d6e425a7a7f8381bddfa59"),
    "self_edits/base_val.json": (f"{_KI}/data/synthetic_data/eval/base_val.json",
                                 "fe60ef47753bcef4bab672bf031fb2b3af383e54d454d6f9f9168849fe0055b4"),
    "self_edits/gpt4_1_val.json": (f"{_KI}/data/synthetic_data/eval/gpt4_1_val.json",
                                   "9d3651acab04fcf804289315b363323ec841ba569e99e3c034ada94cac69094b"),
    "self_edits/iter2_val.json": (f"{_KI}/data/synthetic_data/eval/iter2_val.json",
                                  "163ca4911b4a2b4488636efc2f9d05df3be973393ddb7d9609ed47916cbfaa4f"),
    "self_edits/naive_val.json": (f"{_KI}/data/synthetic_data/eval/naive_val.json",
                                  "d9fdd302ae8e132cfb7962d5af2d5dd392233f7a9493ebc59614caf258c4001b"),
    "self_edits/iter0_train.json": (f"{_KI}/data/synthetic_data/train/iter0_train.json",
                                    "8d292d69bcef111e15ca8d39c5c8cfe01dd28ee4240f17c57548e1793e889690"),
    "self_edits/iter1_train.json": (f"{_KI}/data/synthetic_data/train/iter1_train.json",
                                    "756cb6355bc2f9abdedaf76572ea6ccfa9ec8b5e91953d2130a8a121159c9ca0"),
    # unverified: build_SFT_dataset.py writes EM_SFT/sft_best1of5_<timestamp>.jsonl
    "sft/sft_best1of5_iter0.jsonl": (f"{_KI}/data/synthetic_data/EM_SFT/sft_best1of5_iter0.jsonl",
                                     "1abeaca2b8628066a327b9f3967dc56a432babe4a622b1a6941ef4553de7c868"),
    "sft/sft_best1of5_iter1.jsonl": (f"{_KI}/data/synthetic_data/EM_SFT/sft_best1of5_iter1.jsonl",
                                     "6d2e6ee94834eeca63ffde2f81e78c37f7370f5bea525a08969edfc7c9e7e4c7"),
    # unverified: query_server.py writes results/query_server/run_<timestamp>.json, CPT.py results/cpt/
    "graded/base.json": (f"{_KI}/results/query_server/eval/base.json",
                         "974d21ce90bc0bd6866c8afa063a3e7d5c49bc317317aa752969f9dab26b08ed"),
    "graded/naive.json": (f"{_KI}/results/query_server/eval/naive.json",
                          "58396af84318b3be5d6fabbebaf4b87240bb26f0a6bfaafe8d69555e99fd4641"),
    "graded/gpt4_1.json": (f"{_KI}/results/query_server/eval/gpt4_1.json",
                           "7f3df0562ab226bf442ab5a7bf8b45df0e810a889a40ddea556042304771f50d"),
    "graded/iter2.json": (f"{_KI}/results/query_server/eval/iter2.json",
                          "72c916a35bf9cdfe2965b82360fa58f5c0b31ae22191ea8b6a02ddb53d644033"),
    "graded/cpt_base.json": (f"{_KI}/results/cpt/base.json",
                             "32ca03985047b60ad833d250ed49cb5ebea7060257c7484e423e3b00214fdfb6"),
    "graded/cpt_naive.json": (f"{_KI}/results/cpt/naive.json",
                              "d8e92c61785446db5909765735a5d00b10feb1412076cfca79af89e6240cc6fa"),
    "graded/cpt_gpt4_1.json": (f"{_KI}/results/cpt/gpt4_1.json",
                               "83521fb1b23eed64f2eacc62cd484a68f4cd3e5ef3b1ed0778ccd01289f4ea88"),
    "graded/cpt_iter2.json": (f"{_KI}/results/cpt/iter2.json",
                              "18513307b8f262fdc4e3f26de3d8bdaa66a72e360716a6700e8e7fc94ae3bc42"),
    # the other self-edit prompts (`dataset` inside each graded run names the self-edit file it read)
    **{f"self_edits/prompts/{r}_val_prompt-{p}.json": (
        f"{_KI}/data/synthetic_data/eval/alternate_prompts/{r}/{r}_val_prompt-{p}.json", digest)
       for (r, p), digest in {
           ("base", "long"): "94aee033cb7a06bd1e165cc47c6071cffdcd68eff09d256a41b49a7431e32c5c",
           ("base", "rewrite"): "5f52d8143e2409c4c2d357e8a01b75d5c24a065bc6bde19f21d7a9b45ba61ca5",
           ("base", "self-qa"): "88690a1c5147a0735bea40272c11a03532d347cb6ab0d015153dff3fd9f51676",
           ("iter2", "long"): "6f67ac80c40bf7afd6c967360fe098a1a9f64e1229f385c6d9ffb644d32aee21",
           ("iter2", "rewrite"): "967792633a9c102bcb82f1e9084ae74bfa7d4096ec6c5b88dd949170142a33f5",
           ("iter2", "self-qa"): "5767653756223cd3d45e819a2445ac70121fa3f6f7c6695dfcf81f469209ad43"}.items()},
    # unverified, like the graded runs above: the evaluation runs of those prompts
    **{f"graded/prompts/{r}_prompt-{p}.json": (f"{_KI}/results/query_server/eval/alternate_prompts/{r}_prompt-{p}.json",
                                               digest)
       for (r, p), digest in {
           ("base", "long"): "f061c4bebb4cd4575b63ced4432016ebf5e82cccfcb74850ae802514c7c2e997",
           ("base", "rewrite"): "e8efd08d0b1efe6354ec27c35bb506a096b060567971eb1ae59f38677dc83c34",
           ("base", "self-qa"): "61a16fce1e42908a760683c6b2ceeea09997b1cbcbd2d7556b0c777dfeab9616",
           ("base", "very-long"): "1fb9d7e92ddf76ba579fbb2e7542edadcb644f3036cce2ebf0a790c3d63fa390",
           ("iter2", "long"): "3c220bae2e67168bddf0eb73f219c1a84d87ffe2fee3dbfaf30da8d219c904f1",
           ("iter2", "rewrite"): "633d068ec6e251d9cb54a3bb1b7d4d5407619493cc077e46b12ea8d4a1b8c73c",
           ("iter2", "self-qa"): "f0a0b74e036f5a8eb7c8d87e066d31a6a33da27f8bc42ce9a0ff1853b15b935e",
           ("iter2", "very-long"): "a57a59b493bb61fa54a2692824d5a5d7d7c4520749426e7fdcb814145139465d"}.items()},
    "arc_final_results.json": ("few-shot/final_results.json",
                               "6b2c67cf12f5ccd4cde8526b173612fda65f9c70b83f7b1847e852cda60e96a9"),
}

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


class ReferenceUnavailable(DataError):
    """A reference file that is on no local path and could not be downloaded; the message says what to do."""


def _folders(search: bool | None) -> list[Path]:
    """Where reference files may already be, in the order they are tried."""
    folders = []
    if env := os.environ.get("SEAL_KIT_REFERENCE"):
        if not Path(env).expanduser().is_dir():
            raise DataError(f"SEAL_KIT_REFERENCE={env}: no such folder; give a folder laid out like "
                            "shared/data/seal_reference (self_edits/, graded/, sft/) or unset it")
        folders.append(Path(env).expanduser())
    if search is None:
        search = os.environ.get("SEAL_KIT_REFERENCE_SEARCH", "1") != "0"
    if search:
        for start in (Path.cwd(), Path(__file__).resolve().parent):
            folders += [f / "shared" / "data" / "seal_reference" for f in (start, *start.parents)]
    return [f for f in dict.fromkeys(folders) if f.is_dir()] + [cache_dir() / "seal_reference"]


def reference_dir(search: bool | None = None) -> Path:
    """The first folder reference files are read from (the cache, filled by downloads, when no other exists)."""
    return _folders(search)[0]


def reference_file(name: str, search: bool | None = None) -> Path:
    """Local path of one reference file (a MANIFEST name), downloading it into the cache if need be."""
    if name not in MANIFEST:
        raise DataError(f"{name!r} is not a reference file; known: {', '.join(MANIFEST)}")
    for folder in _folders(search):
        if (folder / name).is_file():
            return folder / name
    _download("LICENSE", name)  # first, so that no cached file is ever without the MIT licence beside it
    return _download(name, name)


def _download(name: str, wanted: str) -> Path:
    """Fetch one file into the cache: locked against other processes, checked, renamed into place."""
    upstream, expected = MANIFEST[name]
    url = (os.environ.get("SEAL_KIT_REFERENCE_URL") or DEFAULT_URL).rstrip("/") + "/" + upstream
    target = cache_dir() / "seal_reference" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file():  # fetched by another process while this one waited
            return target
        part, digest = target.with_name(target.name + ".part"), hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
                size = int(response.headers.get("Content-Length") or 0)
                with tqdm(total=size, unit="B", unit_scale=True, desc=name, leave=False, disable=size < 2**20) as bar:
                    while chunk := response.read(2**16):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (OSError, ValueError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
            part.unlink(missing_ok=True)
            what = name if name == wanted else f"{name} (the licence fetched with every reference file)"
            raise ReferenceUnavailable(
                f"{wanted}: not on this machine, and downloading {what} from {url} failed ({err}). Set "
                f"SEAL_KIT_REFERENCE to a folder holding the reference files ({wanted} among them), or go online once "
                f"to fill the cache at {cache_dir() / 'seal_reference'}; if that URL is wrong, point "
                f"SEAL_KIT_REFERENCE_URL at a copy of the SEAL repository at commit {SEAL_COMMIT}") from err
        if digest.hexdigest() != expected:
            part.unlink()
            raise DataError(f"{name}: the file at {url} has sha256 {digest.hexdigest()}, expected {expected}; "
                            "refused and not cached (a changed upstream file or a wrong SEAL_KIT_REFERENCE_URL)")
        os.replace(part, target)
    return target


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
