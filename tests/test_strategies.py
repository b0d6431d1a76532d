"""Self-edit strategies: stages wired in order, items and pairs, budgets, empty stages, the generator's pairs."""
import pandas as pd
import pytest

from seal_kit import strategies
from seal_kit.self_edit import SamplingConfig, training_documents
from seal_kit.strategies import (STRATEGIES, Budget, Stage, Strategy, generate_self_edits, list_items, strategy_for,
                                 training_pairs)


class Scripted:
    """Stands in for sampling: answers each prompt by what its stage asks, and counts the calls."""

    def __init__(self, entities="- Pellin Harbour\n- Sorrel Sea\n- 1622\n"):
        self.entities, self.calls = entities, []

    def __call__(self, model, tokenizer, rows, config, progress=True, desc="", adapter=None, **kw):
        self.calls.append((desc, config.seed, config.max_new_tokens, len(rows)))
        out = []
        for row in rows:
            prompt = row["prompt"]
            if prompt.startswith("List the important entities"):
                text = self.entities
            elif "relate to each" in prompt:
                pair = prompt.split("how ", 1)[1].split(" relate", 1)[0]
                text = f"The passage links {pair} in one fact.\nBoth {pair} belong to Velmora Island's story."
            else:  # 22 words, new ones each time (the kit's splitting drops repeated pieces)
                n = len(self.calls) * 100 + len(out)
                text = (f"Velmora Island fact {n} is that it lies in the Sorrel Sea.\n"
                        f"Pellin Harbour fact {n} is that it is the capital.")
            out.append({**row, "self_edit": text, "tokens": len(text.split()), "seconds": 0.5})
        return pd.DataFrame(out)


@pytest.fixture
def scripted(monkeypatch):
    fake = Scripted()
    monkeypatch.setattr(strategies, "sample_self_edits", fake)
    return fake


def words(tokenizer=None):
    class Words:  # a tokenizer that counts words, enough for budgets
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

        def decode(self, ids):
            return " ".join(ids)
    return Words()


def test_entigraph_lists_entities_then_relates_pairs_and_records_every_stage(scripted, passage):
    edits = generate_self_edits(None, words(), [passage], "entigraph", SamplingConfig(k=1, seed=3), chat=False)
    row = edits.iloc[0]
    stages = [s["stage"] for s in row.stages]
    assert stages == ["entities", "relations", "relations", "relations"]  # 3 entities: 3 pairs, max_items 4
    assert [s["item"] for s in row.stages[1:]] == ["Pellin Harbour and Sorrel Sea", "Pellin Harbour and 1622",
                                                   "Sorrel Sea and 1622"]
    assert row.self_edit.count("\n---\n") == 2 and "links Sorrel Sea and 1622" in row.self_edit
    assert row.tokens == sum(s["tokens"] for s in row.stages) and row.seconds == pytest.approx(2.0)
    assert row.reason == "" and row.passes == 1 and row.strategy == "entigraph"
    assert row.prompt == row.stages[0]["prompt"] and passage.context in row.prompt
    # one batched call per stage, each under its own seed; the entity stage is short
    assert [(c[1], c[2], c[3]) for c in scripted.calls] == [(3, 96, 1), (3 + 7919, 256, 3)]
    assert training_documents(row.self_edit, passage).from_edit == 6


def test_a_stage_that_lists_nothing_gives_an_empty_edit_with_its_reason(monkeypatch, passage):
    monkeypatch.setattr(strategies, "sample_self_edits", Scripted(entities="Entities:\n"))
    row = generate_self_edits(None, words(), [passage], "entigraph", SamplingConfig(k=1), chat=False).iloc[0]
    assert row.self_edit == "" and "stage 'relations' had nothing to work on" in row.reason
    assert "fewer than two items" in row.reason and [s["stage"] for s in row.stages] == ["entities"]
    assert training_documents(row.self_edit, passage).empty_edit  # trains on the passage alone, no crash


def test_a_token_budget_writes_again_until_full_then_cuts(scripted, passage):
    budget = Budget(tokens=100, passes=3)
    row = generate_self_edits(None, words(), [passage], "spa", SamplingConfig(k=1), chat=False, budget=budget).iloc[0]
    assert row.edit_tokens == 100 and row.passes == 3  # 2 templates a pass write 44 words: 3 passes, then cut
    assert len({s["prompt"] for s in row.stages}) == 6  # rotating over the seven templates
    assert sum(len(p.split()) for p in row.self_edit.splitlines()) == 100
    seeds = [c[1] for c in scripted.calls]
    assert seeds == [0, 104729, 2 * 104729]  # each pass draws anew


def test_a_document_budget_keeps_the_first_documents(scripted, passage):
    row = generate_self_edits(None, words(), [passage], "implications", SamplingConfig(k=1), chat=False,
                              budget="3 documents").iloc[0]
    assert training_documents(row.self_edit, passage).from_edit == 3 and row.passes == 2


@pytest.mark.parametrize("value", [0, "0 documents", 15, "8 tokens"])
def test_a_budget_below_one_document_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=r"BUDGET .*below one document"):
        Budget.parse(value)


def test_budget_parsing():
    assert Budget.parse(None) is None and Budget.parse(384) == Budget(tokens=384)
    assert Budget.parse("12 documents") == Budget(documents=12) and Budget.parse("64 tokens") == Budget(tokens=64)
    with pytest.raises(ValueError, match="BUDGET 'lots'"):
        Budget.parse("lots")


def test_seal_prompts_are_plain_one_stage_strategies():
    for name in ("implications", "self-qa", "Summarise {title}: {context}"):
        assert strategy_for(name).plain
    assert not strategy_for("implications", budget=64).plain
    assert {n for n, s in STRATEGIES.items() if not s.plain} == {"spa", "active-reading", "entigraph", "model-proposed"}
    with pytest.raises(ValueError, match=r"Unknown self-edit prompt 'nope'.*strategy \['active-reading'"):
        strategy_for("nope")


def test_a_plain_prompt_writes_exactly_what_sampling_did(tiny, passage):
    model, tokenizer = tiny
    config = SamplingConfig(k=2, max_new_tokens=8, seed=1)
    plain = generate_self_edits(model, tokenizer, [passage], "rewrite", config, progress=False)
    as_stage = Strategy("rewrite", (Stage("self_edit", (strategies.template_for("rewrite"),)),), budget=Budget(tokens=512,
                                                                                                            passes=1))
    staged = generate_self_edits(model, tokenizer, [passage], as_stage, config, progress=False)
    assert list(staged.prompt) == list(plain.prompt)
    assert [e.split("\n---\n")[0] for e in staged.self_edit] == [e.strip() for e in plain.self_edit]


def test_every_strategy_runs_on_a_real_model(tiny, passage):
    model, tokenizer = tiny
    for name in STRATEGIES:
        edits = generate_self_edits(model, tokenizer, [passage], name, SamplingConfig(k=1, max_new_tokens=6),
                                    progress=False, budget=32)
        row = edits.iloc[0]
        assert row.stages and row.stages[0]["stage"] == STRATEGIES[name].stages[0].name
        assert row.edit_tokens <= 32 and (row.self_edit or row.reason)


def test_a_yaml_strategy_and_its_errors(tmp_path, scripted, passage):
    good = tmp_path / "mine.yaml"
    good.write_text("name: notes\nbudget: 2 documents\nstages:\n"
                    "  - name: facts\n    template: 'List the facts of {title}: {context}'\n"
                    "  - name: notes\n    each: facts\n    max_items: 1\n    template: 'Note on {item} from {facts}'\n")
    strategy = strategy_for(str(good))
    assert [s.name for s in strategy.stages] == ["facts", "notes"] and strategy.budget == Budget(documents=2)
    row = generate_self_edits(None, words(), [passage], str(good), SamplingConfig(k=1), chat=False).iloc[0]
    assert [s["stage"] for s in row.stages] == ["facts", "notes"]
    assert row.stages[1]["prompt"].startswith("Note on Velmora Island fact 100 is that it lies in the Sorrel Sea. from Velmora")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - name: b\n    each: a\n    template: '{item}'\n")
    with pytest.raises(ValueError, match="each='a' is not an earlier stage"):
        strategy_for(str(bad))
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['later'\]"):
        Strategy("x", (Stage("a", ("{later}",)),))
    with pytest.raises(ValueError, match="does not exist"):
        strategy_for(str(tmp_path / "missing.yaml"))


def test_items_and_generator_pairs():
    assert list_items("Entities:\n1. Pellin Harbour\n- **Sorrel Sea**\n- Pellin Harbour\n\n") == ["Pellin Harbour",
                                                                                            "Sorrel Sea"]
    assert list_items("Pellin Harbour, Sorrel Sea, 1622.") == ["Pellin Harbour", "Sorrel Sea", "1622"]
    kept = pd.DataFrame([{"prompt": "p", "self_edit": "e", "stages": []},
                         {"prompt": "q", "self_edit": "x", "stages": [{"prompt": "s1", "output": "o1"},
                                                                      {"prompt": "s2", "output": " "}]}])
    assert training_pairs(kept) == [("p", "e"), ("s1", "o1")]  # every stage that wrote something


def test_rest_em_writes_through_a_strategy_and_trains_the_generator_on_every_stage(tmp_path, monkeypatch):
    from test_rest_em import HELD_OUT, TRAIN, config, length_grader

    from seal_kit.generator import Generator
    from seal_kit.inner_loop import InnerLoopConfig
    from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
    from seal_kit.models import load_model
    from seal_kit.rest_em import RestEM
    from seal_kit.runs import start_run

    model, tokenizer = load_model("tiny", seed=0)
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, lr=1e-2, epochs=1),
                         EvalConfig(max_new_tokens=5), grader=length_grader, prompt="spa", budget=24)
    assert task.strategy.name == "spa" and TRAIN[0].context in task.self_edit_prompt(TRAIN[0])
    seen, update = [], Generator.update
    monkeypatch.setattr(Generator, "update", lambda self, pairs, **kw: seen.append(pairs) or update(self, pairs, **kw))
    cfg = config(rounds=1, keep_empty_edits=True, sampling=SamplingConfig(k=1, max_new_tokens=8, batch_size=4))
    loop = RestEM(task, TRAIN, HELD_OUT, cfg, start_run("rest_em", tmp_path / "run", {}), progress=False)
    assert loop.run()
    edits = pd.read_parquet(tmp_path / "run" / "round-0" / "self_edits.parquet")
    assert all(len(stages) >= 2 and stages[0]["stage"] == "study" for stages in edits.stages)  # 2 templates a pass
    kept = pd.read_parquet(tmp_path / "run" / "round-0" / "kept.parquet")
    assert seen[0] == training_pairs(kept) and len(seen[0]) > len(kept)  # every stage's (prompt -> output)
    assert "stages" in loop.candidates(1) and (loop.candidates(1).split == "eval").any()

