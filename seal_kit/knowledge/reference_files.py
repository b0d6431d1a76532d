"""Where the SEAL authors' published files are: their manifest (path upstream and sha256 of each), the folders a
file is looked for in, and the checked download into the cache (the order is `reference`'s docstring's).

    from seal_kit.knowledge.reference_files import reference_file
    path = reference_file("graded/iter2.json")    # a local path; downloaded and checked if no folder has it
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path

from filelock import FileLock
from tqdm.auto import tqdm

from ..models import cache_dir
from .passages import DataError

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
