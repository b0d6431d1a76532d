"""Graders: score closed-book answers against gold answers, as plain callables.

    from seal_kit.graders import get_grader
    grade = get_grader("contains")               # or "exact_match", "f1", a LocalJudge, any callable
    grade(predictions=["It is Paris."], answers=["Paris"], questions=["Capital of France?"])  # -> [1.0]

A grader is `(predictions, answers, questions) -> list[float]` with scores in [0, 1]; accuracy is
their mean. Local graders keep results free and reproducible (the paper paid GPT-4.1 to judge);
`LocalJudge` asks a local model yes/no, `OpenAIJudge` any OpenAI-compatible endpoint.
"""
from __future__ import annotations

import json
import os
import re
import string
import urllib.request
from collections import Counter
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


JUDGE_PROMPT = (
    "You are grading a quiz. Decide whether the student's answer means the same as the reference answer.\n"
    "Question: {question}\nReference answer: {answer}\nStudent answer: {prediction}\n"
    "Reply with one word: yes or no."
)


def _verdict(text: str) -> float:
    return float(text.strip().lower().lstrip("\"'*").startswith("yes"))


class LocalJudge:
    """A local model answering yes/no to JUDGE_PROMPT, greedily; no network, no cost."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def __call__(self, predictions, answers, questions=None) -> list[float]:
        from .generation import generate
        from .prompts import render

        questions = questions or [""] * len(predictions)
        prompts = [render(self.tokenizer, JUDGE_PROMPT.format(question=q, answer=a, prediction=p))
                   for p, a, q in zip(predictions, answers, questions)]
        outs = generate(self.model, self.tokenizer, prompts, max_new_tokens=3, batch_size=self.batch_size,
                        desc="judging", progress=False)
        return [_verdict(o.text) for o in outs]


class OpenAIJudge:
    """Any OpenAI-compatible chat endpoint (`$SEAL_KIT_JUDGE_URL`, key in `$OPENAI_API_KEY`); optional."""

    def __init__(self, model: str = "gpt-4.1", url: str | None = None, api_key: str | None = None, timeout: float = 60):
        self.model = model
        self.url = (url or os.environ.get("SEAL_KIT_JUDGE_URL") or "").rstrip("/")
        if not self.url:
            raise ValueError("OpenAIJudge needs an endpoint: pass url=... or set SEAL_KIT_JUDGE_URL "
                             "(e.g. a local server's http://127.0.0.1:8000/v1)")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout

    def ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": 3,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        request = urllib.request.Request(f"{self.url}/chat/completions", data=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)["choices"][0]["message"]["content"]

    def __call__(self, predictions, answers, questions=None) -> list[float]:
        questions = questions or [""] * len(predictions)
        return [_verdict(self.ask(JUDGE_PROMPT.format(question=q, answer=a, prediction=p)))
                for p, a, q in zip(predictions, answers, questions)]


GRADERS: dict[str, Grader] = {"exact_match": exact_match, "f1": token_f1, "contains": contains}


def get_grader(grader: str | Grader) -> Grader:
    """A grader by name (exact_match, f1, contains) or any callable with the grader signature."""
    if callable(grader):
        return grader
    if grader not in GRADERS:
        raise ValueError(f"Unknown grader {grader!r}: use one of {sorted(GRADERS)}, a LocalJudge, "
                         "an OpenAIJudge, or any callable (predictions, answers, questions) -> list[float]")
    return GRADERS[grader]
