"""Graders: score closed-book answers against gold answers, as plain callables.

    from seal_kit.graders import get_grader
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
        from .backends import check_backend

        check_backend(backend, "LocalJudge")
        self.model, self.tokenizer, self.batch_size, self.backend = model, tokenizer, batch_size, backend

    def replies(self, prompts: list[str]) -> list[str]:
        from .backends import generate_with
        from .prompts import render

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
# fitted on its 7,792 published verdicts (`seal_kit.agreement.fit`, leave-one-condition-out checked).
# Its score is that probability, so an accuracy (a mean of scores) estimates the judge's accuracy.

_RUN_ON = re.compile(r"\n\s*\n|\s(?:Q|Question|Topic|Context|Passage|Answer)\s*:|\n(?:Q|Question|Topic|Context|Passage)\s*:")
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
                 "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
                 "hundred": "100", "thousand": "1000", "million": "1000000"}
_FUNCTION_WORDS = set("of in on at to for by and or with from as is was were be been are it its this that which "
                      "who whom what when where how why".split())
FEATURES = ("contains", "contains_first", "recall", "recall_first", "recall_new", "number_match", "number_miss",
            "longest_block", "run_on", "log_length", "log_gold_length", "short")


def _stem(word: str) -> str:
    word = _NUMBER_WORDS.get(word, word)
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[:-len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return [_stem(w) for w in normalize(text).split()]


def first_answer(prediction: str) -> str:
    """The answer before the model runs on into a new 'Question:'/'Topic:' or a blank line."""
    return _RUN_ON.split(prediction.strip(), maxsplit=1)[0].strip()


def answer_features(question: str, answer: str, prediction: str) -> list[float]:
    """The fitted grader's inputs, in FEATURES order (all computable without a model)."""
    first = first_answer(prediction)
    gold, said, said_first = _words(answer), set(_words(prediction)), set(_words(first))
    content = [w for w in gold if w not in _FUNCTION_WORDS] or gold
    new = [w for w in content if w not in set(_words(question))] or content  # what the question does not give away

    def recall(words, seen):
        return sum(w in seen for w in words) / len(words) if words else 0.0

    gold_text, first_text = normalize(answer), normalize(first)
    numbers = set(re.findall(r"\d+", answer.replace(",", "")))
    numbers_said = set(re.findall(r"\d+", first.replace(",", ""))) | {w for w in said_first if w.isdigit()}
    blocks = SequenceMatcher(None, gold_text, first_text, autojunk=False).get_matching_blocks()
    return [float(bool(gold_text) and f" {gold_text} " in f" {normalize(prediction)} "),
            float(bool(gold_text) and f" {gold_text} " in f" {first_text} "),
            recall(content, said), recall(content, said_first), recall(new, said_first),
            float(bool(numbers) and numbers <= numbers_said), float(bool(numbers) and not numbers & numbers_said),
            max((b.size for b in blocks), default=0) / max(1, len(gold_text)),
            float(len(first) < len(prediction.strip()) - 5),
            math.log1p(len(said_first)), math.log1p(len(gold)), float(len(_words(first)) <= len(gold) + 3)]


class FittedGrader:
    """Probability that the paper's judge (GPT-4.1) accepts each answer, from lexical features and
    logistic weights (`seal_kit/data/fitted_grader.json`, written by `seal_kit.agreement.fit`).
    An empty answer is always wrong. No model, no network: thousands of answers a second."""

    def __init__(self, weights: dict | None = None):
        if weights is None:
            text = resources.files("seal_kit").joinpath("data/fitted_grader.json").read_text(encoding="utf-8")
            weights = json.loads(text)
        if tuple(weights["features"]) != FEATURES:
            raise ValueError(f"fitted grader weights are for features {weights['features']}, this code computes "
                             f"{list(FEATURES)}: refit with `python -m seal_kit.agreement fit`")
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
        from .models import load_model  # a judge model of its own, beside the one being adapted

        return LocalJudge(*load_model(grader[len("local:"):]))
    raise ValueError(f"Unknown grader {grader!r}: use one of {sorted(GRADERS)}, 'judge:<model>' (e.g. "
                     "'judge:gpt-4.1', an OpenAI-compatible endpoint), 'local:<model>' (a local yes/no judge, e.g. "
                     "'local:embedded'), a LocalJudge, or any callable "
                     "(predictions, answers, questions) -> list[float]")
