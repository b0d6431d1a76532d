"""Graders: score closed-book answers against gold answers, as plain callables.

    from seal_kit.knowledge.graders import get_grader
    grade = get_grader("contains")               # or "exact_match", "f1", "judge:gpt-4.1", a LocalJudge, any callable
    grade(predictions=["It is Paris."], answers=["Paris"], questions=["Capital of France?"])  # -> [1.0]

    # the paper's judge: any OpenAI-compatible endpoint, here a local server
    #   export OPENAI_BASE_URL=http://127.0.0.1:8000/v1   (or OPENAI_API_KEY=... for api.openai.com)
    grade = get_grader("judge:gpt-4.1")

A grader is `(predictions, answers, questions) -> list[float]` with scores in [0, 1]; accuracy is
their mean. Local graders keep results free and reproducible (the paper paid GPT-4.1 to judge);
`LocalJudge` asks a local model yes/no, `OpenAIJudge` an OpenAI-compatible endpoint.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import string
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from difflib import SequenceMatcher
from functools import lru_cache
from importlib import resources
from typing import Callable

Grader = Callable[..., list[float]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(predictions, answers, questions=None) -> list[float]:
    return [float(normalize(p) == normalize(a)) for p, a in zip(predictions, answers)]


def _f1(prediction: str, answer: str) -> float:
    pred, gold = normalize(prediction).split(), normalize(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if not pred or not gold or common == 0:
        return float(pred == gold)
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(predictions, answers, questions=None) -> list[float]:
    return [_f1(p, a) for p, a in zip(predictions, answers)]


def contains(predictions, answers, questions=None) -> list[float]:
    """1 when the normalised gold answer appears as whole words in the normalised prediction."""
    return [float(bool(normalize(a)) and f" {normalize(a)} " in f" {normalize(p)} ") for p, a in zip(predictions, answers)]


# The paper's grading criteria, in our words: meaning over wording, and extra detail is no fault.
JUDGE_PROMPT = (
    "You are marking a quiz. Compare the student's answer with the reference answer for the question.\n"
    "Question: {question}\nReference answer: {answer}\nStudent answer: {prediction}\n"
    "Mark it correct only if the student's answer gets across everything the reference answer says and "
    "claims nothing that conflicts with it. Further detail beyond the reference is acceptable.\n"
    "Is the student's answer correct? Reply with yes or no."
)

_YES, _NO = re.compile(r"\byes\b", re.IGNORECASE), re.compile(r"\bno\b", re.IGNORECASE)


def _verdict(reply: str) -> float:
    """The reference's rule: correct iff the reply says "yes" and never "no", so hedges count as wrong."""
    return float(bool(_YES.search(reply)) and not _NO.search(reply))


class _YesNoJudge:
    """Shared by the judges: build prompts, skip empty answers, ask each distinct triple once."""

    def replies(self, prompts: list[str]) -> list[str]:
        raise NotImplementedError

    def __call__(self, predictions, answers, questions=None) -> list[float]:
        questions = questions or [""] * len(predictions)
        triples = list(zip(questions, answers, predictions))
        # An empty answer cannot convey the gold answer; asking would only cost a request.
        to_ask = list(dict.fromkeys(t for t in triples if t[2].strip()))
        prompts = [JUDGE_PROMPT.format(question=q, answer=a, prediction=p) for q, a, p in to_ask]
        verdicts = {t: _verdict(r) for t, r in zip(to_ask, self.replies(prompts))}
        return [verdicts.get(t, 0.0) for t in triples]


class LocalJudge(_YesNoJudge):
    """A local model answering yes/no to JUDGE_PROMPT, greedily; no network, no cost. `backend`: what the
    replies are generated with, hf or vllm (GPU), as in `backends.generate_with`."""

    def __init__(self, model, tokenizer, batch_size: int = 16, backend: str = "hf"):
        from ..backends import check_backend

        check_backend(backend, "LocalJudge")
        self.model, self.tokenizer, self.batch_size, self.backend = model, tokenizer, batch_size, backend

    def replies(self, prompts: list[str]) -> list[str]:
        from ..backends import generate_with
        from ..prompts import render

        outs = generate_with(self.backend, self.model, self.tokenizer, [render(self.tokenizer, p) for p in prompts],
                             max_new_tokens=3, batch_size=self.batch_size, desc="judging", progress=False)
        return [o.text for o in outs]


OPENAI_URL = "https://api.openai.com/v1"


class OpenAIJudge(_YesNoJudge):
    """The paper's judge (GPT-4.1) or any model behind an OpenAI-compatible chat endpoint.

    Endpoint: `url`, else `$OPENAI_BASE_URL`, else `$SEAL_KIT_JUDGE_URL`, else api.openai.com (only
    with a key). Key: `api_key`, else `$OPENAI_API_KEY`. Up to `max_workers` requests are in flight;
    network errors, timeouts, HTTP 429 and 5xx are retried `attempts` times in all, waiting
    `backoff` seconds and doubling.
    """

    def __init__(self, model: str = "gpt-4.1", url: str | None = None, api_key: str | None = None,
                 timeout: float = 60, max_workers: int = 8, attempts: int = 5, backoff: float = 1.0,
                 max_tokens: int = 5):
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
        url = url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("SEAL_KIT_JUDGE_URL")
        if not url and not self.api_key:
            raise ValueError("OpenAIJudge needs an endpoint: pass url=..., set OPENAI_BASE_URL (e.g. a local "
                             f"server's http://127.0.0.1:8000/v1), or set OPENAI_API_KEY to use {OPENAI_URL}")
        if max_workers < 1 or attempts < 1:
            raise ValueError(f"OpenAIJudge needs max_workers >= 1 and attempts >= 1, got {max_workers} and {attempts}")
        self.model, self.url = model, (url or OPENAI_URL).rstrip("/")
        self.timeout, self.max_workers, self.attempts, self.backoff = timeout, max_workers, attempts, backoff
        self.max_tokens = max_tokens

    def ask(self, prompt: str) -> str:
        """One yes/no reply for one prompt, retrying what may pass on a second try."""
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": self.max_tokens,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.attempts):
            if attempt:
                # Jitter keeps parallel workers that were throttled together from retrying in lockstep.
                time.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(1, 1.5))
            request = urllib.request.Request(f"{self.url}/chat/completions", data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as error:
                failure = f"HTTP {error.code}: {error.read().decode(errors='replace')[:500]}"
                if error.code != 429 and error.code < 500:  # a bad key or request will not improve with waiting
                    raise RuntimeError(f"Judge endpoint {self.url} rejected the request with {failure}") from error
                continue
            except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out
                failure = f"{type(error).__name__}: {error}"
                continue
            try:
                return json.loads(raw)["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as error:
                raise RuntimeError(f"Judge endpoint {self.url} sent no chat completion: {raw[:500]!r}") from error
        raise RuntimeError(f"Judge endpoint {self.url} failed {self.attempts} times; last failure: {failure}")

    def replies(self, prompts: list[str]) -> list[str]:
        if not prompts:
            return []
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(prompts)))
        try:
            return list(pool.map(self.ask, prompts))  # map keeps the input order
        finally:
            pool.shutdown(cancel_futures=True)  # after a hard failure, do not send the queued requests


# --- "fitted": lexical evidence weighed as the paper's judge weighed it -----------------------------
# `contains` misses correct answers that say more than the gold phrase in other words and accepts
# answers that run on into invented questions; GPT-4.1 (the paper's judge) did neither. The fitted
# grader turns a few lexical signals into the probability that GPT-4.1 says "yes", with logistic weights
# fitted on its published verdicts for the 12 single-passage runs (Table 2's four and the other self-edit
# prompts' eight: 23,376 answers, 22,396 of them non-empty; `seal_kit.knowledge.agreement.fit`, checked by leaving
# one run out at a time; the CPT runs are never fitted). Besides exact word and number matches, it reads
# the gold's words in other forms (shared stems, near spellings, hyphenated compounds, ordinals in figures),
# numbers the answer states that the gold does not, answers that hedge, and right answers that run on.
# Its score is that probability, so an accuracy (a mean of scores) estimates the judge's accuracy.

_RUN_ON = re.compile(r"\n\s*\n|\s(?:Q|Question|Topic|Context|Passage|Answer)\s*:|\n(?:Q|Question|Topic|Context|Passage)\s*:")
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
                 "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
                 "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                 "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
                 "million": "1000000", "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
                 "sixth": "6", "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "eleventh": "11",
                 "twelfth": "12"}
_FUNCTION_WORDS = set("of in on at to for by and or with from as is was were be been are it its this that which "
                      "who whom what when where how why".split())
# for weighing the gold's words by length: also the short everyday words that carry little of an answer
_LIGHT_WORDS = _FUNCTION_WORDS | set("after before during into than not also such about over under between there their "
                                     "they them has have had can could would will may might other some any all many "
                                     "much more most very only one".split())
_JOINER = re.compile(r"(?<=\w)[-\u2010-\u2015/](?=\w)")  # "disk-shaped", "1973–80", "AC/DC": separate words
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ORDINAL = re.compile(r"\d+(?:st|nd|rd|th|s)")
_HEDGE = re.compile(r"\b(no (?:specific |explicit |direct )?(?:mention|information|record|indication|evidence)|not "
                    r"(?:explicitly |specifically |directly )?(?:specified|mentioned|known|clear|stated|provided|given|"
                    r"said|discussed|addressed)|unknown|unclear|i don'?t know|cannot be determined|does not "
                    r"(?:say|mention|specify|state|provide))\b", re.I)
# contains: the gold phrase anywhere; recall*: share of the gold's content words said (anywhere, in the first
# answer, of those the question does not give away); number_match/miss: the gold's numbers all / none said;
# longest_block: longest run of gold characters in the first answer; run_on: the answer goes on past it;
# log_gold_length; short: an answer about as short as the gold. The rest read the words in other forms
# (`_near`, hyphens as separators): near_new: the gold's new words said in the answer's own words (not the
# question's); near_new_chars: the same weighed by word length, everyday words left out; number_extra: a
# number the gold does not hold; gold_position: where the first gold word falls (0 first, 1 not at all);
# run_on_hit: a run-on after an answer that has the gold (GPT-4.1 often rejected those); hedge: "not
# mentioned", "unknown" and the like.
FEATURES = ("contains", "recall", "recall_first", "recall_new", "number_match", "number_miss", "longest_block", "run_on",
            "log_gold_length", "short", "near_new", "near_new_chars", "number_extra", "gold_position", "run_on_hit",
            "hedge")


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    word = _NUMBER_WORDS.get(word, word)
    if _ORDINAL.fullmatch(word):  # "11th" -> "11", "1920s" -> "1920"
        return word.rstrip("stndrh")
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[:-len(suffix)]
    return word


def _words(text: str, split: bool = False) -> list[str]:
    return [_stem(w) for w in normalize(_JOINER.sub(" ", text) if split else text).split()]


def _near(word: str, seen: set[str]) -> bool:
    """The word itself, or a form of it: a shared stem ("journalism"/"journalist", "Japan"/"Japanese") or a
    spelling a letter or two apart ("Kurultai"/"Khuruldai")."""
    if word in seen:
        return True
    if len(word) < 4:
        return False
    for other in seen:
        if len(other) < 4 or other[:3] != word[:3]:
            continue
        shared = len(os.path.commonprefix([word, other]))
        if shared >= max(4, min(len(word), len(other)) - 2):
            return True
        if len(word) >= 6 and abs(len(word) - len(other)) <= 2 and SequenceMatcher(None, word, other).ratio() >= 0.8:
            return True
    return False


def _numbers(text: str, words: list[str]) -> set[str]:
    text = text.replace(",", "")
    found = set(_NUMBER.findall(text)) | {w for w in words if w.isdigit()}
    for century, _, end in re.findall(r"\b(1\d|20)(\d\d)\s*[-\u2013\u2014]\s*(\d\d)\b", text):  # "1973–80": 1980 too
        found.add(century + end)
    return found


def first_answer(prediction: str) -> str:
    """The answer before the model runs on into a new 'Question:'/'Topic:' or a blank line."""
    return _RUN_ON.split(prediction.strip(), maxsplit=1)[0].strip()


def answer_features(question: str, answer: str, prediction: str) -> list[float]:
    """The fitted grader's inputs, in FEATURES order (all computable without a model)."""
    return list(_features(question, answer, prediction))


@lru_cache(maxsize=1 << 16)  # runs share many answers (their no-edit baselines), and a refit reads each again
def _features(question: str, answer: str, prediction: str) -> tuple[float, ...]:
    first = first_answer(prediction)
    gold, said, said_first = _words(answer), set(_words(prediction)), _words(first)
    content = [w for w in gold if w not in _FUNCTION_WORDS] or gold
    new = [w for w in content if w not in set(_words(question))] or content  # what the question does not give away

    def recall(words, seen, match=set.__contains__):
        return sum(match(seen, w) for w in words) / len(words) if words else 0.0

    gold_text, first_text = normalize(answer), normalize(first)
    numbers = set(re.findall(r"\d+", answer.replace(",", "")))
    numbers_said = set(re.findall(r"\d+", first.replace(",", ""))) | {w for w in said_first if w.isdigit()}
    blocks = SequenceMatcher(None, gold_text, first_text, autojunk=False).get_matching_blocks()
    run_on = float(len(first) < len(prediction.strip()) - 5)
    # the same words with hyphens and dashes as separators, matched loosely ("disk-shaped" has "disk")
    split_gold, split_first, split_question = _words(answer, True), _words(first, True), set(_words(question, True))
    split_content = [w for w in split_gold if w not in _FUNCTION_WORDS] or split_gold
    split_new = [w for w in split_content if w not in split_question] or split_content
    near = lambda seen, w: _near(w, seen)  # noqa: E731
    near_gold = recall(split_new, set(split_first), near)
    heavy = [w for w in split_gold if w not in _LIGHT_WORDS] or split_gold
    heavy = [w for w in heavy if w not in split_question] or heavy
    chars = sum(len(w) for w in heavy)
    gold_numbers, first_numbers = _numbers(answer, split_gold), _numbers(first, split_first)
    position = next((i / max(1, len(split_first)) for i, w in enumerate(split_first)
                     if w in split_new and w not in split_question), 1.0)
    return (float(bool(gold_text) and f" {gold_text} " in f" {normalize(prediction)} "),
            recall(content, said), recall(content, set(said_first)), recall(new, set(said_first)),
            float(bool(numbers) and numbers <= numbers_said), float(bool(numbers) and not numbers & numbers_said),
            max((b.size for b in blocks), default=0) / max(1, len(gold_text)), run_on,
            math.log1p(len(gold)), float(len(said_first) <= len(gold) + 3),
            recall(split_new, {w for w in split_first if w not in split_question}, near),
            sum(len(w) for w in heavy if _near(w, set(split_first))) / chars if chars else 0.0,
            float(bool(gold_numbers) and bool(first_numbers - gold_numbers)), position,
            run_on * near_gold, float(bool(_HEDGE.search(first))))


class FittedGrader:
    """Probability that the paper's judge (GPT-4.1) accepts each answer, from lexical features and
    logistic weights (`seal_kit/data/fitted_grader.json`, written by `seal_kit.knowledge.agreement.fit`).
    An empty answer is always wrong. No model, no network: thousands of answers a second."""

    def __init__(self, weights: dict | None = None):
        if weights is None:
            text = resources.files("seal_kit").joinpath("data/fitted_grader.json").read_text(encoding="utf-8")
            weights = json.loads(text)
        if tuple(weights["features"]) != FEATURES:
            raise ValueError(f"fitted grader weights are for features {weights['features']}, this code computes "
                             f"{list(FEATURES)}: refit with `python -m seal_kit.knowledge.agreement fit`")
        self.weights = weights

    def __call__(self, predictions, answers, questions=None) -> list[float]:
        questions = questions or [""] * len(predictions)
        w, mean, scale = self.weights["coef"], self.weights["mean"], self.weights["scale"]
        scores = []
        for p, a, q in zip(predictions, answers, questions):
            if not (p or "").strip():
                scores.append(0.0)
                continue
            z = self.weights["intercept"] + sum(c * (x - m) / s for c, x, m, s in
                                                zip(w, answer_features(q, a, p), mean, scale))
            scores.append(1 / (1 + math.exp(-z)))
        return scores


# Named graders; "judge:<model>" is resolved separately because the model name is open-ended.
@lru_cache(maxsize=1)
def shipped_fitted() -> FittedGrader:
    return FittedGrader()


def fitted(predictions, answers, questions=None) -> list[float]:
    """The FittedGrader with the shipped weights (the default for knowledge runs)."""
    return shipped_fitted()(predictions, answers, questions)


GRADERS: dict[str, Grader] = {"exact_match": exact_match, "f1": token_f1, "contains": contains, "fitted": fitted}
DEFAULT_GRADER = "fitted"


def get_grader(grader: str | Grader) -> Grader:
    """A grader by name (see GRADERS), "judge:<model>" for an OpenAIJudge, or any callable grader."""
    if callable(grader):
        return grader
    if grader in GRADERS:
        return GRADERS[grader]
    if isinstance(grader, str) and grader.startswith("judge:") and grader[len("judge:"):]:
        return OpenAIJudge(model=grader[len("judge:"):])
    if isinstance(grader, str) and grader.startswith("local:") and grader[len("local:"):]:
        from ..models import load_model  # a judge model of its own, beside the one being adapted

        return LocalJudge(*load_model(grader[len("local:"):]))
    raise ValueError(f"Unknown grader {grader!r}: use one of {sorted(GRADERS)}, 'judge:<model>' (e.g. "
                     "'judge:gpt-4.1', an OpenAI-compatible endpoint), 'local:<model>' (a local yes/no judge, e.g. "
                     "'local:embedded'), a LocalJudge, or any callable "
                     "(predictions, answers, questions) -> list[float]")
