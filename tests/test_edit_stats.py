"""Edit statistics on small hand-made self-edits whose lengths, grounding, invented names and diversity are known."""
import math

import pandas as pd
import pytest

from seal_kit.knowledge import edit_stats
from seal_kit.knowledge.passages import QA, Passage
from seal_kit.self_edit import training_documents

PASSAGE = Passage("p0", "Velmora Island", "Velmora Island lies in the Sorrel Sea. Its capital, Pellin Harbour, "
                  "has 20,000 people and was founded in 1804 by Ada Quill.", (QA("Capital?", "Pellin Harbour"),))
OTHER = Passage("p1", "Tarn Valley", "The Tarn Valley grows barley and rye on terraced slopes.", ())


def test_an_edit_that_copies_its_passage_is_fully_grounded_and_one_in_new_words_not_at_all():
    assert edit_stats.grounding(PASSAGE.context, PASSAGE.context) == 1.0
    assert edit_stats.grounding("Velmora Island lies in the Sorrel Sea.", PASSAGE.context) == 1.0
    assert edit_stats.grounding("Ships rarely stop there because winter storms are frequent.", PASSAGE.context) == 0.0
    # three of the six trigrams are the passage's: "lies in the", "in the sorrel", "the sorrel sea"
    assert edit_stats.grounding("It lies in the Sorrel Sea, I think.", PASSAGE.context) == pytest.approx(3 / 6)
    assert edit_stats.grounding("It lies in the Sorrel Sea, I think.", PASSAGE.context, n=1) == pytest.approx(5 / 8)
    assert math.isnan(edit_stats.grounding("Two words", PASSAGE.context))  # shorter than one trigram
    with pytest.raises(ValueError, match="n >= 1"):
        edit_stats.grounding("a b c", "a b c", n=0)


def test_names_and_numbers_missing_from_the_passage_are_invented_and_the_passages_own_are_not():
    edit = ("1. Pellin Harbour was founded in 1805 by Ada Quill.\n2. About 20000 people live in Pellin Harbour,\n"
            "Question 3: Who visited? Answer 3: The traveller Oren Vale visited Velmora Island in 1804.")
    # list labels (1., 2., Question 3:, Answer 3:) are no numbers, and a sentence's first word ("The", "Who",
    # "About") is no name; 20000 is the passage's 20,000 written without the comma
    assert edit_stats.names_and_numbers(edit) == ["Harbour", "1805", "Ada", "Quill", "20000", "Pellin", "Harbour",
                                                  "Oren", "Vale", "Velmora", "Island", "1804"]
    assert edit_stats.invented(edit, PASSAGE.context) == ["1805", "Oren", "Vale"]
    assert edit_stats.invented("Founded in 1804 by Ada Quill.", PASSAGE.context) == []
    assert edit_stats.invented("Velmora's capital is on Velmora Island.", PASSAGE.context) == []  # possessive
    row = edit_stats.per_edit(pd.DataFrame({"passage_id": ["p0"], "self_edit": [edit]}), [PASSAGE]).iloc[0]
    assert (row.names_numbers, row.invented, row.invented_list) == (12, 3, ["1805", "Oren", "Vale"])
    assert row.invented_share == pytest.approx(3 / 12)
    # the title is shown with the passage: a name from it is not invented
    titled = Passage("p2", "Pellin Harbour", "The town has a harbour.", ())
    assert edit_stats.per_edit(pd.DataFrame({"passage_id": ["p2"], "self_edit": ["It is in Pellin Harbour."]}),
                               [titled]).invented.iloc[0] == 0


def test_words_leave_labels_out_and_documents_are_the_kits_training_documents():
    edit = "Implications:\n1. Velmora Island lies in the Sorrel Sea.\n2. Its capital is Pellin Harbour.\n- Ada Quill founded it."
    assert edit_stats.words("Question 12: 2. Who is Ada? Answer 12: Ada.") == ["who", "is", "ada", "ada"]
    row = edit_stats.per_edit(pd.DataFrame({"passage_id": ["p0"], "sample": [3], "self_edit": [edit]}), [PASSAGE]).iloc[0]
    assert row.words == 1 + 7 + 5 + 4 and row["sample"] == 3
    assert row.documents == training_documents(edit, PASSAGE).from_edit == 3  # the filler line dropped
    # the passage may come from the table itself, by context (and title)
    own = edit_stats.per_edit(pd.DataFrame({"title": [PASSAGE.title], "context": [PASSAGE.context], "self_edit": [edit]}))
    assert own.drop(columns="title").iloc[0].to_dict() == row.drop(["passage_id", "sample"]).to_dict()


def test_every_edit_is_matched_with_its_own_passage_or_the_missing_one_is_named():
    table = pd.DataFrame({"passage_id": ["p1", "p0"], "self_edit": ["The Tarn Valley grows barley.",
                                                                      "Velmora Island lies in the Sorrel Sea."]})
    stats = edit_stats.per_edit(table, {"p0": PASSAGE, "p1": OTHER})
    assert stats.grounding.tolist() == [1.0, 1.0] and stats.index.equals(table.index)
    candidates = table.rename(columns={"passage_id": "context_id"})  # a ReST-EM round's candidates name it so
    assert edit_stats.per_edit(candidates, [PASSAGE, OTHER]).grounding.tolist() == [1.0, 1.0]
    assert edit_stats.summary(candidates, [PASSAGE, OTHER])["n_passages"] == 2
    with pytest.raises(ValueError, match=r"no passage given for passage_id\(s\) \['p1'\]"):
        edit_stats.per_edit(table, [PASSAGE])
    with pytest.raises(ValueError, match="need each edit's passage"):
        edit_stats.per_edit(table)
    with pytest.raises(ValueError, match="need a self_edit column"):
        edit_stats.per_edit(table.rename(columns={"self_edit": "text"}), [PASSAGE, OTHER])


def test_repeated_text_compresses_more_and_has_fewer_distinct_ngrams_than_varied_text():
    same = ["The harbour was busy with boats and traders every morning."] * 8
    varied = ["The harbour was busy with boats and traders every morning.", "Barley grows on the terraced slopes.",
              "A storm closed the pass for nine days in winter.", "Ada Quill kept ledgers of every ship's cargo.",
              "Rye bread is baked in clay ovens near the square.", "Children learn to sail before they can swim.",
              "The lighthouse keeper counts gulls at dawn.", "Two rivers meet below the old stone bridge."]
    assert edit_stats.compression_ratio(same) > 2 * edit_stats.compression_ratio(varied)
    assert edit_stats.distinct_n(varied) == 1.0  # no trigram appears twice
    assert edit_stats.distinct_n(same) == pytest.approx(1 / 8)  # every trigram appears 8 times
    assert edit_stats.distinct_n(["a b", "c d"]) != edit_stats.distinct_n(["a b", "c d"])  # NaN: no trigram at all
    assert math.isnan(edit_stats.compression_ratio([]))


def test_summary_pools_invented_names_and_measures_the_tables_diversity():
    table = pd.DataFrame({"passage_id": ["p0", "p0", "p1"], "self_edit": [
        "Pellin Harbour has 20,000 people.", "Oren Vale founded Pellin Harbour in 1805.", "The Tarn Valley grows rye."]})
    summary = edit_stats.summary(table, [PASSAGE, OTHER])
    assert summary["n_edits"] == 3 and summary["n_passages"] == 2 and summary["n"] == 3
    # names and numbers used: Harbour, 20000 | Vale, Pellin, Harbour, 1805 | Tarn, Valley: 2 of 8 invented
    stats = edit_stats.per_edit(table, [PASSAGE, OTHER])
    assert stats.invented.tolist() == [0, 2, 0] and stats.names_numbers.tolist() == [2, 4, 2]
    assert summary["invented_share"] == pytest.approx(2 / 8) and summary["invented_per_edit"] == pytest.approx(2 / 3)
    assert summary["words"] == pytest.approx((5 + 7 + 5) / 3)
    assert summary["distinct_n"] == edit_stats.distinct_n(table.self_edit)
    assert edit_stats.summary(table, [PASSAGE, OTHER], stats=stats) == summary
    with pytest.raises(ValueError, match="same index"):
        edit_stats.summary(table, [PASSAGE, OTHER], stats=stats.iloc[:2])


def test_collapse_warning_speaks_only_when_diversity_falls_sharply():
    before = {"n": 3, "distinct_n": 0.70, "compression_ratio": 3.7}
    assert edit_stats.collapse_warning(before, {"n": 3, "distinct_n": 0.65, "compression_ratio": 4.0}) is None
    fell = edit_stats.collapse_warning(before, {"n": 3, "distinct_n": 0.50, "compression_ratio": 4.0})
    assert fell.startswith("self-edit diversity fell sharply: distinct-3 0.700 -> 0.500 (-29%)")
    assert "compression" not in fell
    rose = edit_stats.collapse_warning(before, {"n": 3, "distinct_n": 0.69, "compression_ratio": 11.0})
    assert "compression ratio 3.70 -> 11.00 (+197%)" in rose and "distinct" not in rose.split(":")[1]
    assert edit_stats.collapse_warning(before, {"distinct_n": 0.5, "compression_ratio": 5.0}, threshold=0.5) is None
    assert edit_stats.collapse_warning(before, {"distinct_n": None, "compression_ratio": None}) is None  # NaN via JSON
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        edit_stats.collapse_warning(before, before, threshold=20)
    with pytest.raises(ValueError, match=r"lacks \['compression_ratio'\]"):
        edit_stats.collapse_warning(before, {"distinct_n": 0.5})


def test_relation_to_gain_is_a_rank_correlation_per_group():
    table = pd.DataFrame({"round": ["a"] * 4 + ["b"] * 4, "words": [10, 20, 30, 40, 10, 20, 30, 40],
                          "gain": [0.0, 0.1, 0.5, 0.9, 0.9, 0.5, 0.5, 0.0]})
    rho = edit_stats.relation_to_gain(table, by=["round"], statistics=["words"])
    assert rho.index.tolist() == ["a", "b"] and rho.loc["a", "words"] == pytest.approx(1.0)  # monotone, not linear
    assert rho.loc["b", "words"] == pytest.approx(-0.9486833)  # the tied gains share rank 2.5
    assert edit_stats.relation_to_gain(table, statistics=["words"]).index.tolist() == ["all"]
    assert math.isnan(edit_stats.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match=r"lacks \['grounding'\]"):
        edit_stats.relation_to_gain(table, statistics=["grounding"])
