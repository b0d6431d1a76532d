"""Prompts: the self-edit prompt families of SEAL and the closed-book question prompt.

    from seal_kit.prompts import self_edit_prompt, question_prompt
    text = self_edit_prompt(tokenizer, passage, "implications")      # or a template of your own:
    text = self_edit_prompt(tokenizer, passage, "Summarise {title}:\n{context}\nSummary:\n")

A template is plain text with `{title}` and `{context}`. Instruct models get it as the user turn of a
chat; base models get it as a plain completion prompt, as the reference prompted Qwen2.5-7B (`chat`:
None decides from the model, see `uses_chat`; True/False forces it).

Two layouts: `"kit"` (ours: `Title: ...` / `Passage: ...`, an instruction to answer concisely) and
`"reference"`, the reference code's arrangement with instructions in our own words: the passage block
`Passage:\n{title}\n{context}`, the cue `Implications:` (self-QA: `Question 1: `), and the question
prompt `Question: Topic: {title}\n{question}` ending in `Answer:`.
"""
from __future__ import annotations

import re
import string
from typing import Protocol


class Context(Protocol):
    """What a self-edit is written about: any object with an id, a title and a context (the knowledge
    setting's `Passage` is one). The core never imports a setting; it reads these three fields."""
    id: str
    title: str
    context: str


LAYOUTS = ("kit", "reference")

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

# The reference code's layout: the same instructions in a plainer arrangement, the passage as a block
# under "Passage:" with its title on the first line, and the reference's cues.
_REFERENCE_BLOCK = "\n\nPassage:\n{title}\n{context}\n\n"
REFERENCE_PROMPTS = {
    "implications": "Read the following passage and list the implications that follow from it, directly or "
                    "indirectly." + _REFERENCE_BLOCK + "Implications:\n",
    "implications-long": "Read the following passage and write a long list of implications that follow from it, "
                         "directly or indirectly, each a full sentence." + _REFERENCE_BLOCK + "Implications:\n",
    "implications-very-long": "Read the following passage and write a very long, thorough list of implications "
                              "that follow from it, directly or indirectly: every fact, restated in several ways."
                              + _REFERENCE_BLOCK + "Implications:\n",
    "rewrite": "Rewrite the following passage in several different ways, keeping every fact."
               + _REFERENCE_BLOCK + "Rewrite:\n",
    "self-qa": "Write questions about the following passage, each followed by its answer."
               + _REFERENCE_BLOCK + "Question 1: ",
}

# The stages of `seal_kit.strategies`' pipelines, in our words (the papers give the ideas, not the text).
_PASSAGE = "\n\nTitle: {title}\nPassage: {context}\n\n"
SPA_PROMPTS = {  # seven ways people learn a text (SPA, arXiv 2603.22213, lists the seven)
    "key concepts": "List the key concepts of the passage below and explain each in a sentence or two, naming the "
                    "subject every time." + _PASSAGE + "Key concepts:\n",
    "mind map": "Write a mind map of the passage below as an indented outline: the topic first, its main ideas "
                "under it, the details under each idea, every line a complete statement." + _PASSAGE + "Mind map:\n",
    "implications": "What follows from the passage below? Write the implications and consequences of its facts, "
                    "one full sentence each." + _PASSAGE + "Implications:\n",
    "critical questions": "Write questions that make a reader think critically about the passage below, each followed "
                          "by a careful answer from the passage. Use 'Question 1: ...' and 'Answer: ...'."
                          + _PASSAGE + "Questions and answers:\n",
    "case study": "Write a short case study that puts the facts of the passage below to use in a concrete situation, "
                  "keeping every name, number and date exact." + _PASSAGE + "Case study:\n",
    "discussion": "Write a discussion between two students going over the passage below, stating and checking its "
                  "facts with each other." + _PASSAGE + "Discussion:\n",
    "teacher": "Explain the passage below as a teacher would to a class: go through every fact in order, in plain "
               "words, repeating the important names, numbers and dates." + _PASSAGE + "Explanation:\n",
}
STAGE_PROMPTS = {  # "strategy.stage" -> its template
    "active-reading.strategies": "You will study the passage below until you know every fact in it. List three "
                                 "different ways to study it (for example: paraphrase it, quiz yourself, build a "
                                 "timeline, link it to what you know), one per line, each a short instruction."
                                 + _PASSAGE + "Strategies:\n",
    "active-reading.study": "Apply this study strategy to the passage below and write out the result in full, keeping "
                            "every fact exact.\nStrategy: {item}" + _PASSAGE + "Result:\n",
    "entigraph.entities": "List the important entities in the passage below (people, places, organisations, objects, "
                          "dates, numbers and ideas), one per line, names only." + _PASSAGE + "Entities:\n",
    "entigraph.relations": "Using only the passage below, write a short paragraph on how {item} relate to each other, "
                           "restating the facts that connect them." + _PASSAGE + "Paragraph:\n",
    "model-proposed.proposal": "You are writing training material that will help a language model remember every fact "
                               "in the passage below. Propose the best instruction for writing that material: one "
                               "short paragraph saying what to write and in what form. Write only the instruction."
                               + _PASSAGE + "Instruction:\n",
    "model-proposed.material": "{proposal}" + _PASSAGE + "Write it now:\n",
}

CHAT_DATE = "26 Jul 2024"
QUESTION_PROMPTS = {
    "kit": "Topic: {title}\n{question}\nAnswer directly and concisely.",
    "reference": "Answer the question directly and concisely.\n\nQuestion: Topic: {title}\n{question}\nAnswer:",
}
QUESTION_PROMPT = QUESTION_PROMPTS["kit"]


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"prompt layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    return layout


def template_for(prompt: str, layout: str = "kit") -> str:
    """A family name from SELF_EDIT_PROMPTS (in `layout`), or a template of your own with {context} in it."""
    families = REFERENCE_PROMPTS if check_layout(layout) == "reference" else SELF_EDIT_PROMPTS
    if prompt in families:
        return families[prompt]
    if "{context}" in prompt:
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
        except ValueError as err:
            raise ValueError(f"self-edit template {prompt!r}: {err}; write a literal brace as {{{{ or }}}}") from None
        if unknown := sorted(fields - {"title", "context"}):
            raise ValueError(f"self-edit template {prompt!r} has unknown field(s) {unknown}: a template fills "
                             "{title} and {context} only; write a literal brace as {{ or }}")
        return prompt
    raise ValueError(
        f"Unknown self-edit prompt {prompt!r}: use one of {sorted(SELF_EDIT_PROMPTS)} "
        "or a template of your own containing {context} (and optionally {title})."
    )


# A name ending in a size ("Qwen2.5-7B", "Llama-3.2-1B", "SmolLM2-135M") is a base model; instruct and
# chat variants carry a suffix ("-Instruct", "-chat", "-it"). Some base models ship a chat template
# (Qwen2.5's do), so the template alone cannot tell.
_BASE_NAME = re.compile(r"\d+(\.\d+)?[bm]$", re.IGNORECASE)


def looks_like_base_model(tokenizer) -> bool:
    name = str(getattr(tokenizer, "name_or_path", "") or "").rstrip("/").split("/")[-1]
    return bool(_BASE_NAME.search(name))


def uses_chat(tokenizer, chat: bool | None = None) -> bool:
    """Chat formatting when asked (True/False); with None, when the tokenizer has a chat template and the
    model's name does not end in a size as base models' do (Qwen2.5-7B: plain, as the reference prompted it)."""
    if chat is not None:
        return bool(chat)
    return bool(getattr(tokenizer, "chat_template", None)) and not looks_like_base_model(tokenizer)


def render(tokenizer, text: str, chat: bool | None = None) -> str:
    """Wrap `text` as one user turn plus the assistant cue for instruct models; as is for base models."""
    if not uses_chat(tokenizer, chat):
        return text
    # Llama-3 templates print today's date into the system turn unless given one: fix it, so a prompt
    # (and so a run) is the same tomorrow. Templates without a date ignore the variable.
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                                         date_string=CHAT_DATE)


def self_edit_prompt(tokenizer, passage: Context, prompt: str = "implications", chat: bool | None = None,
                     layout: str = "kit") -> str:
    return render(tokenizer, template_for(prompt, layout).format(title=passage.title, context=passage.context), chat)


def question_prompt(tokenizer, title: str, question: str, chat: bool | None = None, layout: str = "kit") -> str:
    """The closed-book question: the topic (title) and the question, never the passage."""
    return render(tokenizer, QUESTION_PROMPTS[check_layout(layout)].format(title=title, question=question), chat)
