"""ARC test-time training and augmented inference: text format, masking, voting, the setting on a tiny model."""
import dataclasses
import json
import random

import pandas as pd
import pytest

from seal_kit import backends
from seal_kit.arc.augment import IDENTITY, Dihedral
from seal_kit.arc.data import (ArcDataError, ArcTask, Example, grid_to_list_text, grid_to_text, list_text_to_grid,
                               load_tasks)
from seal_kit.arc.edit import DECODING_SCHEMA, TTTConfig
from seal_kit.arc.few_shot import ArcConfig, ArcFewShot, inner_config
from seal_kit.arc.results import first_draw, sampling_report, success_by_task_set, success_intervals
from seal_kit.arc.ttt import (LEAVE_ONE_OUT_TRANSFORMS, composite, hierarchical_vote, inference_transforms,
                              leave_one_out_views, read_prediction, task_text, training_examples, vote)
from seal_kit.generation import Generation
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.self_edit import SamplingConfig, sample_self_edits

SMALL = load_tasks("seal-train", ids=["5582e5ca", "6150a2bd"])  # 3x3 grids: short prompts


def random_grid(rng, h=None, w=None):
    h, w = h or rng.randint(1, 6), w or rng.randint(1, 6)
    return tuple(tuple(rng.randint(0, 9) for _ in range(w)) for _ in range(h))


def test_task_text_ends_where_the_answer_starts():
    task = SMALL[0]
    text = task_text(task.train, task.test[0].input)
    assert text.endswith(f"Input:\n{grid_to_text(task.test[0].input)}\nOutput:\n")
    assert text.count("Input:") == len(task.train) + 1 and text.count("Output:") == len(task.train) + 1


def test_training_examples_by_strategy():
    tasks = [SMALL[0], SMALL[1]]
    pairs = training_examples(tasks, "output_only")
    texts = training_examples(tasks, "all_tokens")
    assert len(pairs) == len(texts) == 2
    assert [p + a for p, a in pairs] == texts
    assert pairs[0][1] == grid_to_text(tasks[0].test[0].output)
    with pytest.raises(ValueError, match="strategy"):
        training_examples(tasks, "outputs")
    unknown = ArcTask("x", tasks[0].train, (Example(tasks[0].test[0].input, None),))
    with pytest.raises(ArcDataError, match="task x"):
        training_examples([unknown], "output_only")


def test_read_prediction_inverts_every_view():
    rng = random.Random(0)
    for _ in range(50):
        grid = random_grid(rng)
        for view in inference_transforms(8):
            answer = grid_to_text(view.apply(grid)) + "\n\nInput:\n1 2"  # a model rambling past its answer
            assert read_prediction(view, answer) == grid, view.name
    assert read_prediction(IDENTITY, "no grid here") is None
    assert read_prediction(Dihedral("rot90"), "1 2\n3") is None  # ragged rows are no grid
    with pytest.raises(ValueError, match="1..8"):
        inference_transforms(9)


def test_vote_most_frequent_first_ties_by_first_seen():
    a, b, c = ((1,),), ((2,),), ((3,),)
    assert vote([b, a, None, a, c, b, a], attempts=2) == [a, b]
    assert vote([c, b, None], attempts=2) == [c, b]  # tie: order seen
    assert vote([None, None]) == []
    assert vote([a, b, c], attempts=1) == [a]
    with pytest.raises(ValueError):
        vote([a], attempts=0)


@pytest.fixture(scope="module")
def setting():
    from seal_kit.models import load_model
    model, tokenizer = load_model("tiny", seed=0)
    inner = InnerLoopConfig(rank=4, alpha=8, lr=1e-3, epochs=1, max_length=512)
    return ArcFewShot(model, tokenizer, inner, ArcConfig(max_examples=4, views=2, max_new_tokens=12, batch_size=2))


def test_failed_edits_score_zero_with_their_reason(setting):
    task = SMALL[0]
    bad = setting.score(task, "Sure! Here is my config: {broken")
    assert (bad["reward"], bad["status"], bad["steps"]) == (0.0, "bad_json", 0) and bad["reason"]
    edit = TTTConfig().as_self_edit()
    edit["training"]["learning_rate"] = 0.5  # out of range
    invalid = setting.score(task, json.dumps(edit))
    assert invalid["status"] == "invalid_edit" and "learning_rate" in invalid["reason"] and invalid["reward"] == 0.0


def test_step_budget_turns_a_runaway_config_into_a_failed_edit(setting):
    tight = ArcFewShot.__new__(ArcFewShot)
    tight.__dict__.update(setting.__dict__, config=dataclasses.replace(setting.config, max_steps=3))
    job = tight.inner_job(SMALL[0], json.dumps(TTTConfig(num_train_epochs=10).as_self_edit()))
    assert job.failed and job.status == "over_budget" and "exceeds the budget of 3" in job.reason


def test_valid_edit_trains_on_augmented_tasks_with_output_only_loss(setting):
    task = SMALL[0]
    config = TTTConfig(use_size_augmentations=False, use_chain_augmentations=False, learning_rate=1e-3,
                       num_train_epochs=2)
    job = setting.inner_job(task, "```json\n" + json.dumps(config.as_self_edit()) + "\n```\nHope it helps.")
    assert job.status == "ok" and job.overrides == {"lr": 1e-3, "epochs": 2}
    # 4 augmented tasks (max_examples); a leave-two-out task gives 2 examples, one per held-out demonstration
    assert 4 <= len(job.examples) <= 8 and len(job.documents) == len(job.examples)
    assert all(d.startswith(task.id) for d in job.documents)
    # output-only: the loss covers exactly the answer grid (and EOS), found by tokenizing prompt and answer apart
    (prompt, answer), = job.examples[:1]
    ids, labels = setting.inner.encode([(prompt, answer)])[0]
    learned = [t for t, label in zip(ids, labels) if label != -100]
    assert setting.tokenizer.decode(learned, skip_special_tokens=True).strip() == answer
    scored = setting.score_job(task, job, seed=0)
    assert scored["steps"] == 2 * len(job.examples) and all(loss == loss for loss in scored["losses"])
    assert scored["reward"] in (0.0, 1.0) and len(scored["attempts"]) == len(task.test)


def test_all_tokens_strategy_trains_on_whole_texts(setting):
    job = setting.config_job(SMALL[0], TTTConfig(strategy="all_tokens"))
    assert all(isinstance(e, str) for e in job.examples)
    ids, labels = setting.inner.encode(job.examples[:1])[0]
    assert all(label != -100 for label in labels)


def test_examples_longer_than_max_length_are_dropped_not_cut(setting):
    big = load_tasks("seal-eval", ids=["903d1b4a"])[0]  # 16x16 grids: every example is over 512 tokens
    job = setting.config_job(big, TTTConfig())
    assert job.status == "empty_edit" and not job.examples and "max_length=512" in job.reason


def test_evaluate_votes_over_views_and_maps_answers_back(setting, monkeypatch):
    task = SMALL[1]
    gold = task.test[0].output
    views = inference_transforms(setting.config.views)

    def answer_with(grid_for_view):
        def fake_generate(model, tokenizer, prompts, **kwargs):
            assert len(prompts) == len(views) * len(task.test)
            return [Generation(grid_to_text(grid_for_view(v)), 9, 0.0) for v in views]
        return fake_generate

    monkeypatch.setitem(backends.BACKENDS, "hf", answer_with(lambda v: v.apply(gold)))  # right in every frame
    assert setting.evaluate(task)["reward"] == 1.0
    monkeypatch.setitem(backends.BACKENDS, "hf", answer_with(lambda v: gold))  # right only unrotated: still voted in
    result = setting.evaluate(task)
    assert result["reward"] == 1.0 and result["attempts"][0][0] == grid_to_text(gold)
    wrong = tuple(tuple((c + 1) % 10 for c in row) for row in gold)
    monkeypatch.setitem(backends.BACKENDS, "hf", answer_with(lambda v: v.apply(wrong)))
    assert setting.evaluate(task) == {"reward": 0.0, "solved": [False], "attempts": [[grid_to_text(wrong)]]}


def test_evaluate_refuses_a_task_without_solutions(setting):
    task = SMALL[0]
    unknown = ArcTask("no-solutions", task.train, (Example(task.test[0].input, None),))
    with pytest.raises(ArcDataError, match="no-solutions.*solutions file"):
        setting.evaluate(unknown)


def test_self_edit_prompt_shows_the_demonstrations_and_every_key(setting):
    prompt = setting.self_edit_prompt(SMALL[0])
    assert grid_to_text(SMALL[0].train[0].output) in prompt
    for key in TTTConfig.__dataclass_fields__:
        assert key in prompt
    assert grid_to_text(SMALL[0].test[0].input) not in prompt or SMALL[0].test[0].input in [e.input for e in SMALL[0].train]


def test_bad_arc_config_is_refused():
    with pytest.raises(ValueError, match="1..8"):
        ArcConfig(views=0)
    with pytest.raises(ValueError, match="attempts"):
        ArcConfig(attempts=0)


def test_rest_em_runs_on_arc_unchanged(tmp_path, monkeypatch):
    """The outer loop knows nothing about ARC: configs are sampled, scored, the valid ones kept, the generator updated."""
    import pandas as pd

    from seal_kit import generator
    from seal_kit.models import load_model
    from seal_kit.rest_em import GeneratorConfig, RestEM, RestEMConfig
    from seal_kit.runs import start_run
    from seal_kit.self_edit import SamplingConfig

    good = json.dumps(TTTConfig(use_size_augmentations=False, use_chain_augmentations=False, learning_rate=1e-3,
                                num_train_epochs=1).as_self_edit())

    # a random tiny model never writes JSON
    schemas = []

    def sample(model, tokenizer, rows, config, progress, desc="", adapter=None, accept=None, schema=None):
        schemas.append(schema)  # the task's schema reaches sampling (used when SamplingConfig.constrained)
        return pd.DataFrame([{**r, "self_edit": good if r["sample"] == 0 else "I would rotate it.", "tokens": 9,
                              "seconds": 0.0} for r in rows])

    monkeypatch.setattr(generator, "sample_self_edits", sample)
    model, tokenizer = load_model("tiny", seed=0)
    setting = ArcFewShot(model, tokenizer, InnerLoopConfig(rank=4, alpha=8, max_length=512),
                         ArcConfig(max_examples=2, views=1, max_new_tokens=8))
    cfg = RestEMConfig(rounds=1, selection="best_of_k", eval_k=1, final_train=False,
                       sampling=SamplingConfig(k=2, max_new_tokens=8),
                       generator=GeneratorConfig(rank=4, alpha=8, epochs=1, max_length=2048))
    run = start_run("arc", tmp_path, dataclasses.asdict(cfg))
    loop = RestEM(setting, SMALL, load_tasks("seal-eval", ids=["66e6c45b"]), cfg, run, progress=False)
    assert loop.run()
    table = loop.candidates()
    train = table[table.split == "train"]
    assert sorted(train.status) == ["bad_json", "bad_json", "ok", "ok"]
    assert (table.attempts == 1).all() and table.accepted.all()  # tables without draw counts: one draw each
    failed = train[train.status == "bad_json"]
    assert (failed.reward == 0).all() and failed.reason.str.contains("no {...} object").all()
    assert all(d.startswith(c) for c, docs in zip(train.context_id, train.documents) for d in docs)
    assert [r["n_kept"] for r in loop.summaries] == [2, 0] and loop.summaries[0]["updated"]
    kept = pd.read_parquet(tmp_path / "round-0" / "kept.parquet")
    assert (kept.self_edit == good).all() and (kept["sample"] == 0).all()
    assert loop.generator_losses[0] and all(x == x for x in loop.generator_losses[0])
    assert schemas and all(schema is DECODING_SCHEMA for schema in schemas)


def test_batched_inner_loop_scores_arc_configs_as_one_at_a_time(setting):
    """Per-candidate learning rates and epochs (the self-edit's choice) survive batching."""
    from seal_kit.batched import BatchedLoRA

    edits = [json.dumps(TTTConfig(use_size_augmentations=False, use_chain_augmentations=False, learning_rate=lr,
                                  num_train_epochs=epochs).as_self_edit()) for lr, epochs in ((1e-3, 1), (1e-4, 2))]
    items = [(SMALL[0], edits[0], 0), (SMALL[0], "not json", 0), (SMALL[1], edits[1], 1)]
    one = setting.score_many(items)
    many = setting.score_many(items, BatchedLoRA(setting.inner))
    assert [r["status"] for r in many] == ["ok", "bad_json", "ok"]
    for a, b in zip(one, many):
        assert (a["steps"], a["reward"], a.get("attempts")) == (b["steps"], b["reward"], b.get("attempts"))
        assert b["losses"] == pytest.approx(a["losses"], abs=1e-4)


# -- the reference's ways, switched on --------------------------------------------------------------------
A, B, C, X, Y, Z = (((v,),) for v in range(1, 7))  # 1x1 grids: easy to count


def test_hierarchical_vote_weighs_groups_not_views():
    """Five untransformed views say B, two rotated/flipped groups say A: a flat vote picks B, the hierarchical
    vote A (each group nominates three grids: a unanimous group its answer thrice, so A gets 3 + 3 + 1)."""
    predictions = [("identity", B)] * 5 + [("rot180", A), ("transpose", A), ("flip_vertical", None)]
    assert vote([p for _, p in predictions], attempts=1) == [B]
    assert hierarchical_vote(predictions, attempts=1) == [A]
    assert hierarchical_vote(predictions, attempts=2) == [A, B]
    assert hierarchical_vote([("identity", None)]) == []
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        hierarchical_vote(predictions, attempts=0)


def test_hierarchical_vote_breaks_a_tie_for_second_by_the_untransformed_views():
    """Y and Z are nominated 4 times each (Y first); Z is an untransformed view's answer, so Z is the second attempt."""
    predictions = [("rot180", Y), ("identity", Z), ("transpose", X), ("flip_vertical", X)]
    assert vote([p for _, p in predictions]) == [X, Y]
    assert hierarchical_vote(predictions) == [X, Z]


def test_composite_votes_row_by_row_or_column_by_column():
    answers = [((1, 1), (2, 2)), ((5, 5), (3, 3)), ((1, 1), (4, 4)), ((6, 6), (3, 3)), ((1,),)]
    assert composite(answers) == ((1, 1), (3, 3))  # a grid none of the answers is: rows (1, 1) and (3, 3) win
    assert composite(answers[:4], by_columns=True) == answers[0]  # every column differs: the first seen


def test_leave_one_out_views_leave_each_demonstration_out_and_add_five_turned_views():
    task = load_tasks("seal-train", ids=["5582e5ca"])[0]  # 3 demonstrations
    views = leave_one_out_views(task.train, task.test[0].input, random.Random(0), permutations=2)
    plain = [v for v in views if v.group == "identity"]
    assert len(plain) == 3 * 2 and len(set(v.demos for v in plain)) == 6  # 2 orders of each pair of demonstrations
    assert all(len(v.demos) == 2 for v in views)
    assert {next(d for d in task.train if d not in v.demos) for v in plain} == set(task.train)
    assert [v.group for v in views[6:]] == list(LEAVE_ONE_OUT_TRANSFORMS)
    assert len(leave_one_out_views(task.train, task.test[0].input, random.Random(0), permutations=0)) == 3 + 5
    single = leave_one_out_views(task.train[:1], task.test[0].input, random.Random(0))
    assert single[0].demos == task.train[:1]


@pytest.fixture(scope="module")
def reference():
    """The tiny model under every reference switch: its chat layout with Python-list grids, its tool families,
    leave-one-out views with the hierarchical vote, 0 epochs over budget, batch 2 with a cosine schedule."""
    from seal_kit.models import load_model
    model, tokenizer = load_model("tiny", seed=0)
    inner = dataclasses.replace(inner_config(reference=True), rank=4, alpha=8, lr=1e-3, max_length=768)
    arc = ArcConfig(max_examples=4, max_new_tokens=12, batch_size=4, grid_format="python_lists",
                    augmentations="reference", permute_examples=True, inference_views="leave_one_out",
                    voting="hierarchical", over_budget="untrained")
    return ArcFewShot(model, tokenizer, inner, arc)


def test_reference_test_time_training_in_its_chat_layout(reference):
    task = SMALL[0]
    edit = TTTConfig(use_size_augmentations=False, use_chain_augmentations=False, learning_rate=1e-3,
                     num_train_epochs=2).as_self_edit()
    job = reference.inner_job(task, json.dumps(edit))
    assert job.status == "ok" and 4 <= len(job.examples) <= 8
    prompt, answer = job.examples[0]
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    assert " -> " in prompt and "]]#\n" in prompt and answer.endswith("]]#") and list_text_to_grid(answer) is not None
    ids, labels = reference.inner.encode([(prompt, answer)])[0]
    learned = [t for t, label in zip(ids, labels) if label != -100]
    assert reference.tokenizer.decode(learned, skip_special_tokens=True).strip() == answer
    trained = reference.inner.train(job.examples, seed=0, **job.overrides)
    assert trained.steps == 2 * -(-len(job.examples) // 2)  # batch 2
    adapted = {name.split(".")[-2] for name, _ in reference.inner.model.named_modules() if name.endswith("lora_A")}
    assert adapted == {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"}


def test_over_budget_untrained_trains_0_steps_and_still_answers(reference):
    task = SMALL[0]
    tight = ArcFewShot.__new__(ArcFewShot)
    tight.__dict__.update(reference.__dict__, config=dataclasses.replace(reference.config, max_steps=1))
    job = tight.inner_job(task, json.dumps(TTTConfig(num_train_epochs=10).as_self_edit()))
    assert not job.failed and job.status == "empty_edit" and not job.examples
    assert job.reason.startswith("over_budget, trained for 0 epochs:") and "exceeds the budget of 1" in job.reason
    scored = tight.score_job(task, job, seed=0)
    assert scored["steps"] == 0 and scored["reward"] == scored["baseline"]
    assert scored["attempts"] == tight.baseline(task)["attempts"] and len(scored["attempts"]) == len(task.test)


def test_reference_inference_reads_python_lists_back_through_every_view(reference, monkeypatch):
    task = SMALL[1]
    gold = task.test[0].output
    views = reference.views(task, 0)
    assert len(views) > 5 and {v.group for v in views} >= set(LEAVE_ONE_OUT_TRANSFORMS) - {"rot180"}

    def answer_with(grid_for_view):
        def fake_generate(model, tokenizer, prompts, **kwargs):
            assert len(prompts) == len(views) and all(p.endswith("<|im_start|>assistant\n") for p in prompts)
            return [Generation(grid_to_list_text(grid_for_view(v)) + "#", 9, 0.0) for v in views]
        return fake_generate

    monkeypatch.setitem(backends.BACKENDS, "hf", answer_with(lambda v: v.transform.apply(gold)))
    result = reference.evaluate(task)
    assert result["reward"] == 1.0 and result["attempts"] == [[grid_to_text(gold)]]
    wrong = tuple(tuple((c + 1) % 10 for c in row) for row in gold)
    monkeypatch.setitem(backends.BACKENDS, "hf", answer_with(lambda v: v.transform.apply(wrong)))
    assert reference.evaluate(task)["reward"] == 0.0


def test_resampling_stops_at_the_first_draw_that_parses(setting, monkeypatch):
    good = json.dumps(TTTConfig().as_self_edit())
    script = {"p0": ["no json here", good, "unused"], "p1": ["{broken", "still none", "nope"], "p2": [good]}
    calls = []

    def fake_generate(model, tokenizer, prompts, **options):
        calls.append((list(prompts), options["seed"], options["temperature"]))
        return [Generation(script[p][sum(p in c[0] for c in calls) - 1], 5, 1.0) for p in prompts]

    monkeypatch.setitem(backends.BACKENDS, "hf", fake_generate)
    rows = [{"prompt": p} for p in script]
    config = SamplingConfig(temperature=0.8, max_new_tokens=128, max_attempts=3, seed=7)
    table = sample_self_edits(None, None, rows, config, progress=False, accept=setting.accepts)
    assert table.attempts.tolist() == [2, 3, 1] and table.accepted.tolist() == [True, False, True]
    assert table.self_edit.tolist() == [good, "nope", good] and table.seconds.tolist() == [2.0, 3.0, 1.0]
    assert calls == [(["p0", "p1", "p2"], 7, 0.8), (["p0", "p1"], 8, 0.8), (["p1"], 9, 0.8)]  # the cap: 3 draws
    calls.clear()
    once = sample_self_edits(None, None, rows, dataclasses.replace(config, max_attempts=1), progress=False,
                             accept=setting.accepts)
    assert once.attempts.tolist() == [1, 1, 1] and once.accepted.tolist() == [False, False, True] and len(calls) == 1
    with pytest.raises(ValueError, match="max_attempts must be >= 1"):
        SamplingConfig(max_attempts=0)

    scored = table.assign(split="eval", context_id=["t0", "t1", "t2"], reward=[1.0, 0.0, 1.0])
    assert sampling_report(scored) == {"eval": {"self_edits": 3, "draws": 6, "redrawn": 2, "never_accepted": 1,
                                                "most_draws": 3}}
    by_set = success_by_task_set({"redrawn": scored, "first_draw": first_draw(scored)},
                                 {"all": None, "reference_8": ["t0", "t1"], "none": []})
    assert by_set == {"all": {"redrawn": 2 / 3, "first_draw": 1 / 3},
                      "reference_8": {"redrawn": 0.5, "first_draw": 0.0}, "none": {"redrawn": None, "first_draw": None}}


def test_success_intervals_average_a_tasks_configs_before_resampling_tasks():
    pairs = pd.DataFrame({"task": ["a", "a", "b", "b", "c", "c"], "reward": [1.0, 1.0, 0.0, 1.0, 0.0, 0.0],
                          "status": ["ok", "ok", "ok", "bad_json", "invalid_edit", "over_budget"]})
    per_task = pd.DataFrame({"task": ["a", "b"], "reward": [1.0, 0.0]})
    table = success_intervals({"icl": per_task, "ttt": pairs, "none": per_task.iloc[:0]}).set_index("method")
    assert list(table.index) == ["icl", "ttt"]  # a method without rows is left out
    assert table.at["ttt", "success"] == pytest.approx(0.5) and table.at["ttt", "n_tasks"] == 3
    assert table.at["ttt", "n_rows"] == 6 and table.at["ttt", "valid_configs"] == pytest.approx(4 / 6)
    assert pd.isna(table.at["icl", "valid_configs"]) and table.at["icl", "n_tasks"] == 2
    # tasks are resampled with their configs averaged (1, 0.5, 0): every resampled mean lies in [0, 1] in
    # steps of 1/6, and an interval from per-row resampling of six rows could not reach 1.0 the same way
    assert 0.0 <= table.at["ttt", "low"] <= 0.5 <= table.at["ttt", "high"] <= 1.0
    assert (table.at["icl", "low"], table.at["icl", "high"]) == (0.0, 1.0)


def test_reference_switches_are_checked():
    for name, bad in (("grid_format", "lists"), ("augmentations", "paper"), ("inference_views", "loo"),
                      ("voting", "ranked"), ("over_budget", "skip")):
        with pytest.raises(ValueError, match=rf"ArcConfig.{name} must be one of .*got '{bad}'"):
            ArcConfig(**{name: bad})
    assert inner_config().batch_size == 1 and inner_config(reference=True).schedule == "cosine"


def test_a_chat_rendered_document_gets_one_bos():
    """Llama-3's chat template begins with its BOS text; an all-tokens example in the reference's layout is such
    a document, and its tokenizer adds a BOS of its own unless told not to (one token per character here)."""
    from seal_kit.inner_loop import encode_examples

    class Tokenizer:
        bos_token, bos_token_id, eos_token_id = "^", 1, 2

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [self.bos_token_id] * add_special_tokens + [1 if c == "^" else ord(c) for c in text]}

    [(ids, labels)] = encode_examples(Tokenizer(), ["^system: [[1]] -> [[2]]#"], max_length=100)
    assert ids.count(1) == 1 and ids[:2] == [1, ord("s")] and ids[-1] == 2 and labels == ids
    [(plain, _)] = encode_examples(Tokenizer(), ["a plain document"], max_length=100)
    assert plain[0] == 1  # no BOS text: the tokenizer's BOS as before
