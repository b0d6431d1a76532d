"""Prompts: the self-edit prompt families of SEAL and the closed-book question prompt.

    from seal_kit.prompts import self_edit_prompt, question_prompt
    text = self_edit_prompt(tokenizer, passage, "implications")      # or a template of your own:
    text = self_edit_prompt(tokenizer, passage, "Summarise {title}:\n{context}\nSummary:\n")

A template is plain text with `{title}` and `{context}`. Instruct models (a tokenizer with a chat
template) get it as the user turn of a chat; base models get it as a plain completion prompt.
"""
from __future__ import annotations

from .passages import Passage

# Our wording of the paper's families; each ends with the cue the self-edit continues from.
SELF_EDIT_PROMPTS = {
    "implications": (
        "Read the passage below and list the implications that follow from it, directly or indirectly. "
        "Write one self-contained statement per line.\n\nTitle: {title}\nPassage: {context}\n\nImplications:\n"
    ),
    "implications-long": (
        "Read the passage below and write a long list of implications that follow from it, directly or "
        "indirectly. Restate every fact in full sentences, one per line, naming the subject each time."
        "\n\nTitle: {title}\nPassage: {context}\n\nImplications:\n"
    ),
    "implications-very-long": (
        "Read the passage below and write a very long and thorough list of implications that follow from it, "
        "directly or indirectly: every fact, number, name and date, each restated in several ways, one full "
        "sentence per line, naming the subject each time.\n\nTitle: {title}\nPassage: {context}\n\nImplications:\n"
    ),
    "rewrite": (
        "Rewrite the passage below in several different ways, keeping every fact. Separate the versions with "
        "a line containing only ---.\n\nTitle: {title}\nPassage: {context}\n\nRewrites:\n"
    ),
    "self-qa": (
        "Write question and answer pairs that test every fact in the passage below. Use the format "
        "'Question 1: ...' on one line and 'Answer: ...' on the next.\n\nTitle: {title}\nPassage: {context}\n\n"
        "Questions and answers:\n"
    ),
}

CHAT_DATE = "26 Jul 2024"
QUESTION_PROMPT = "Topic: {title}\n{question}\nAnswer directly and concisely."


def template_for(prompt: str) -> str:
    """A family name from SELF_EDIT_PROMPTS, or a template of your own with {context} in it."""
    if prompt in SELF_EDIT_PROMPTS:
        return SELF_EDIT_PROMPTS[prompt]
    if "{context}" in prompt:
        return prompt
    raise ValueError(
        f"Unknown self-edit prompt {prompt!r}: use one of {sorted(SELF_EDIT_PROMPTS)} "
        "or a template of your own containing {context} (and optionally {title})."
    )


def uses_chat(tokenizer, chat: bool | None = None) -> bool:
    """Chat formatting when asked, else whenever the tokenizer has a chat template (instruct models)."""
    return bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat


def render(tokenizer, text: str, chat: bool | None = None) -> str:
    """Wrap `text` as one user turn plus the assistant cue for instruct models; as is for base models."""
    if not uses_chat(tokenizer, chat):
        return text
    # Llama-3 templates print today's date into the system turn unless given one: fix it, so a prompt
    # (and so a run) is the same tomorrow. Templates without a date ignore the variable.
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                                         date_string=CHAT_DATE)


def self_edit_prompt(tokenizer, passage: Passage, prompt: str = "implications", chat: bool | None = None) -> str:
    return render(tokenizer, template_for(prompt).format(title=passage.title, context=passage.context), chat)


def question_prompt(tokenizer, title: str, question: str, chat: bool | None = None) -> str:
    """The closed-book question: the topic (title) and the question, never the passage."""
    return render(tokenizer, QUESTION_PROMPT.format(title=title, question=question), chat)
