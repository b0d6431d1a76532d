import pytest

from seal_kit.prompts import SELF_EDIT_PROMPTS, question_prompt, self_edit_prompt


@pytest.mark.parametrize("family", sorted(SELF_EDIT_PROMPTS))
def test_every_family_shows_title_and_passage(tiny, passage, family):
    _, tokenizer = tiny
    text = self_edit_prompt(tokenizer, passage, family, chat=False)
    assert passage.title in text and passage.context in text
    assert text.rstrip().endswith(":")  # the cue the self-edit continues from


def test_chat_wrapping_follows_the_tokenizer(tiny, passage):
    _, tokenizer = tiny
    chat = self_edit_prompt(tokenizer, passage, "implications")  # SmolLM2 has a chat template
    plain = self_edit_prompt(tokenizer, passage, "implications", chat=False)
    assert chat.startswith("<|im_start|>") and chat.rstrip().endswith("<|im_start|>assistant")
    assert plain in chat and not plain.startswith("<|im_start|>")


def test_custom_template_and_unknown_name(tiny, passage):
    _, tokenizer = tiny
    assert self_edit_prompt(tokenizer, passage, "Notes on {title}: {context}\n", chat=False).startswith("Notes on Velmora")
    with pytest.raises(ValueError, match="implications"):
        self_edit_prompt(tokenizer, passage, "summaries")


def test_question_prompt_is_closed_book(tiny, passage):
    _, tokenizer = tiny
    text = question_prompt(tokenizer, passage.title, passage.questions[0].question)
    assert "Topic: Velmora Island" in text and passage.questions[0].question in text
    assert passage.context not in text


def test_chat_templates_get_a_fixed_date(tiny):
    """Llama-3 templates print today's date unless given one; prompts must not change from day to day."""
    import copy

    from seal_kit.prompts import CHAT_DATE, render

    tokenizer = copy.deepcopy(tiny[1])
    tokenizer.chat_template = "{{ date_string | default('today') }}: {{ messages[0]['content'] }}"
    assert render(tokenizer, "hello") == f"{CHAT_DATE}: hello"
