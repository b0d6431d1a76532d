from seal_kit.self_edit import DocumentConfig, SamplingConfig, split_self_edit, training_documents
from seal_kit.strategies import generate_self_edits


def test_lines_become_documents_with_title_and_passage(passage):
    edit = "Here are the implications:\n- Pellin Harbour is the capital of Velmora Island.\n2. Velmora Island is in the Sorrel Sea.\n"
    docs = training_documents(edit, passage)
    assert docs.texts == ["Velmora Island\nPellin Harbour is the capital of Velmora Island.",
                          "Velmora Island\nVelmora Island is in the Sorrel Sea.",
                          f"Velmora Island\n{passage.context}"]
    assert docs.from_edit == 2 and not docs.empty_edit


def test_separators_and_question_markers():
    cfg = DocumentConfig()
    rewrite = "Velmora is an island in the Sorrel Sea.\n---\nThe Sorrel Sea holds Velmora Island."
    assert split_self_edit(rewrite, cfg) == ["Velmora is an island in the Sorrel Sea.", "The Sorrel Sea holds Velmora Island."]
    qa = "Question 1: What is the capital?\nAnswer: Pellin Harbour\nQuestion 2: Which sea?\nAnswer: Sorrel Sea"
    assert split_self_edit(qa, cfg) == ["Question 1: What is the capital?\nAnswer: Pellin Harbour",
                                        "Question 2: Which sea?\nAnswer: Sorrel Sea"]
    whole = DocumentConfig(split_lines=False)
    assert split_self_edit("line one is long\nline two is long", whole) == ["line one is long\nline two is long"]


def test_degenerate_edits_are_empty_not_errors(passage):
    for edit in ["", "   \n\n", "ok\nok\n", "Implications:"]:
        docs = training_documents(edit, passage)
        assert docs.empty_edit and docs.texts == [f"Velmora Island\n{passage.context}"]


def test_repeats_are_deduplicated_and_options_apply(passage):
    docs = training_documents("A long repeated statement.\nA long repeated statement.", passage,
                              DocumentConfig(title_prefix=False, include_passage=False))
    assert docs.texts == ["A long repeated statement."]


def test_generate_self_edits_table(tiny, passage):
    model, tokenizer = tiny
    cfg = SamplingConfig(k=3, max_new_tokens=12, batch_size=2, seed=1)
    edits = generate_self_edits(model, tokenizer, [passage, passage], "rewrite", cfg, progress=False)
    assert list(edits.columns) == ["passage_id", "title", "sample", "prompt", "self_edit", "tokens", "seconds"]
    assert len(edits) == 6 and list(edits["sample"]) == [0, 1, 2, 0, 1, 2]
    assert edits.tokens.between(0, 12).all() and (edits.seconds > 0).all()
    again = generate_self_edits(model, tokenizer, [passage, passage], "rewrite", cfg, progress=False)
    assert list(again.self_edit) == list(edits.self_edit)  # same seed, same samples


def test_a_markdown_heading_is_filler_too(passage):
    # GPT-4.1's published self-edits open with "**Implications:**": a heading, not a fact to train on
    docs = training_documents("**Implications:**\n1. Pellin Harbour is the capital of Velmora Island.\n", passage)
    assert docs.texts[0] == "Velmora Island\nPellin Harbour is the capital of Velmora Island." and docs.from_edit == 1


def test_reference_split_keeps_numbering_and_drops_a_heading_only_over_a_numbered_list(passage):
    reference = DocumentConfig(split="reference")
    listed = "Here are the implications:\n1. Pellin Harbour is the capital.\n2. It was founded in 1622.\n\nok"
    assert split_self_edit(listed, reference) == ["1. Pellin Harbour is the capital.", "2. It was founded in 1622.",
                                                 "ok"]  # short pieces kept: the reference filtered nothing
    unlisted = "Here are the implications:\n- Pellin Harbour is the capital.\n- It was founded in 1622."
    assert split_self_edit(unlisted, reference)[0] == "Here are the implications:"  # kept: no "1." below it
    assert split_self_edit(unlisted, DocumentConfig())[0] == "Pellin Harbour is the capital."  # ours drops it
    docs = training_documents("A fact.\nA fact.\n---\nAnother fact.", passage, reference)
    assert docs.texts == [f"{passage.title}\nA fact.", f"{passage.title}\nA fact.", f"{passage.title}\nAnother fact.",
                          f"{passage.title}\n{passage.context}"]  # no dedupe either
    import pytest

    with pytest.raises(ValueError, match="split must be 'kit' or 'reference'"):
        DocumentConfig(split="paper")
