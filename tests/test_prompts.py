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
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['passage'\]: a template fills \{title\} and"):
        self_edit_prompt(tokenizer, passage, "Rewrite {passage} given {context}")  # was a bare KeyError
    with pytest.raises(ValueError, match="write a literal brace"):
        self_edit_prompt(tokenizer, passage, "As JSON {\"facts\": [...]} from {context}")
    assert "{x}" in self_edit_prompt(tokenizer, passage, "Braces {{x}} and {context}", chat=False)


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


@pytest.mark.parametrize("family", sorted(SELF_EDIT_PROMPTS))
def test_reference_layout_has_the_passage_block_and_cues(tiny, passage, family):
    _, tokenizer = tiny
    text = self_edit_prompt(tokenizer, passage, family, chat=False, layout="reference")
    assert f"\n\nPassage:\n{passage.title}\n{passage.context}\n\n" in text
    cue = {"self-qa": "Question 1: ", "rewrite": "Rewrite:\n"}.get(family, "Implications:\n")
    assert text.endswith(cue)
    assert text != self_edit_prompt(tokenizer, passage, family, chat=False)  # the kit's layout differs


def test_reference_question_prompt(tiny, passage):
    _, tokenizer = tiny
    question = passage.questions[0].question
    text = question_prompt(tokenizer, passage.title, question, chat=False, layout="reference")
    assert text.endswith(f"\n\nQuestion: Topic: {passage.title}\n{question}\nAnswer:")
    assert passage.context not in text
    with pytest.raises(ValueError, match="layout must be one of kit, reference"):
        question_prompt(tokenizer, passage.title, question, layout="paper")


def test_chat_is_automatic_for_instruct_names_and_plain_for_base_names(tiny):
    import copy

    from seal_kit.prompts import uses_chat

    tokenizer = copy.deepcopy(tiny[1])  # has a chat template
    for name, chat in [("Qwen/Qwen2.5-7B", False), ("meta-llama/Llama-3.2-1B", False), ("HuggingFaceTB/SmolLM2-135M", False),
                       ("Qwen/Qwen2.5-7B-Instruct", True), ("/cache/models/SmolLM2-135M-Instruct/", True),
                       ("meta-llama/Llama-3.2-1B-Instruct", True), ("my-finetune", True)]:
        tokenizer.name_or_path = name
        assert uses_chat(tokenizer) is chat, name
        assert uses_chat(tokenizer, chat=not chat) is (not chat), name  # an explicit CHAT wins
    tokenizer.chat_template = None
    tokenizer.name_or_path = "Qwen/Qwen2.5-7B-Instruct"
    assert uses_chat(tokenizer) is False  # no template: nothing to chat with
