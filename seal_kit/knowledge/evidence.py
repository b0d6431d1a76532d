"""The paper's evidence: GPT-4.1's verdicts on every self-edit prompt's runs, before RL and after, as tables.

    from seal_kit.knowledge import evidence
    from seal_kit.knowledge.reference import load_reference_passages
    passages = load_reference_passages("seal-eval")[:20]
    ids = [p.id for p in passages]
    judged = evidence.load_judged(ids)                   # every (prompt, round) run's judged answers on these passages
    evidence.prompt_rl(judged, seed=0)                   # per prompt: before/after RL, 95% intervals, paired RL gain
    evidence.accuracy_by_passage(judged)                 # per run and passage: reward, baseline, gain
    evidence.rl_change(per_passage_table, ["reward"])    # per prompt and passage: after RL minus before
    cards = evidence.review_table(judged, evidence.load_edits(ids, sample=0), passages)
    Review(cards, read_only=True)                        # seal_kit.review: browse them
    scored = evidence.grade(judged, "fitted")            # + grader_score: the kit's grader on every answer
    evidence.agreement_table(scored, "fitted")           # per run: that grader against GPT-4.1's verdicts
    evidence.disagreements(scored)                       # the answers they judge differently
    evidence.baseline_spread(judged)                     # why the no-edit baselines differ between runs

The runs are the paper's prompt ablation (`reference.PROMPT_SETS`): five self-edit prompts, each with
Qwen2.5-7B's edits before RL ("base") and after two ReST-EM rounds ("iter2"), 200 passages. Each run
fine-tuned on each passage's first self-edit (sample 0), asked the questions closed-book and had GPT-4.1
judge every answer, and judged the untrained model's answers again too (its own no-edit baseline).
An accuracy is a mean over passages of per-passage accuracy, as the paper reports it; intervals are
percentile bootstraps over passages (`seal_kit.stats`), the RL gain is paired passage by passage.
"""
from __future__ import annotations

import pandas as pd

from ..stats import bootstrap_interval, paired_gain
from .agreement import agreement, judge_consistency
from .graders import Grader, get_grader, shipped_fitted
from .reference import PROMPT_SETS, PROMPTS, ROUNDS, load_graded, load_reference_self_edits

RUN_KEY = ["prompt", "round", "condition"]


def _of_passages(table: pd.DataFrame, passage_ids, what: str) -> pd.DataFrame:
    """The rows of `passage_ids` (all rows for None); an id the table lacks is refused, naming what it covers."""
    if passage_ids is None:
        return table
    wanted = [str(p) for p in passage_ids]
    if unknown := sorted(set(wanted) - set(table.passage_id)):
        raise ValueError(f"no {what} for passage id(s) {unknown[:5]}; they cover "
                         f"{table.passage_id.min()} .. {table.passage_id.max()}")
    return table[table.passage_id.isin(wanted)]


def load_judged(passage_ids=None) -> pd.DataFrame:
    """Every prompt x round run's judged answers (`reference.load_graded` rows with `prompt` and `round`
    columns; `condition` is the set's name), for `passage_ids` only when given."""
    tables = [load_graded(name).assign(prompt=prompt, round=rnd) for (prompt, rnd), name in PROMPT_SETS.items()]
    return _of_passages(pd.concat(tables, ignore_index=True), passage_ids, "judged answers").reset_index(drop=True)


def load_edits(passage_ids=None, sample: int | None = None) -> pd.DataFrame:
    """Every published self-edit of those runs, `prompt` (its name: implications, rewrite, ...) and `round`
    columns in front (the prompt's text is in `prompt_text`); `sample=0` keeps the judged edit only.
    Five per passage, one for implications-very-long (only its judged edit was published)."""
    tables = [load_reference_self_edits(name).rename(columns={"prompt": "prompt_text"})
              .assign(prompt=prompt, round=rnd, condition=name) for (prompt, rnd), name in PROMPT_SETS.items()]
    edits = _of_passages(pd.concat(tables, ignore_index=True), passage_ids, "published self-edits")
    if sample is not None:
        edits = edits[edits["sample"] == sample]
    return edits[[*RUN_KEY, *(c for c in edits.columns if c not in RUN_KEY)]].reset_index(drop=True)


def accuracy_by_passage(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per run and passage: `reward` (GPT-4.1's accuracy after training on the self-edit),
    `baseline` (the same run's no-edit answers) and `gain` (reward - baseline), each a mean over the
    passage's questions."""
    means = (judged.assign(correct=judged.reference_correct.astype(float))
             .pivot_table(index=[*RUN_KEY, "passage_id"], columns="kind", values="correct", aggfunc="mean",
                          sort=False))
    table = means.rename(columns={"adapter": "reward"}).reset_index()[[*RUN_KEY, "passage_id", "reward", "baseline"]]
    table.columns.name = None
    return table.assign(gain=table.reward - table.baseline)


def prompt_rl(judged: pd.DataFrame, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per prompt (rows, the paper's order): accuracy before RL and after two rounds with their intervals,
    the paired RL gain (after - before, passage by passage) with its interval, the number of passages, and
    each run's no-edit baseline (the judge re-judged it every run: its spread is the judge's own)."""
    per_passage = accuracy_by_passage(judged)
    interval = dict(level=level, resamples=resamples, seed=seed)
    rows = []
    for prompt in [p for p in PROMPTS if p in set(per_passage.prompt)]:
        runs = per_passage[per_passage.prompt == prompt].pivot(index="passage_id", columns="round")
        if missing := [r for r in ROUNDS if ("reward", r) not in runs.columns]:
            raise ValueError(f"{prompt}: no judged answers of round(s) {missing}; prompt_rl compares "
                             f"{' and '.join(ROUNDS)}")
        runs = runs.dropna()  # passages judged in both rounds: the gain is paired
        before, after = runs["reward", "base"].to_numpy(), runs["reward", "iter2"].to_numpy()
        gain = paired_gain(after, before, **interval)
        rows.append({"prompt": prompt, "before": float(before.mean()),
                     **dict(zip(("before_low", "before_high"), bootstrap_interval(before, **interval))),
                     "after": float(after.mean()),
                     **dict(zip(("after_low", "after_high"), bootstrap_interval(after, **interval))),
                     "gain": gain["gain"], "gain_low": gain["ci_low"], "gain_high": gain["ci_high"],
                     "n_passages": gain["n_passages"], "baseline_before": float(runs["baseline", "base"].mean()),
                     "baseline_after": float(runs["baseline", "iter2"].mean())})
    return pd.DataFrame(rows).set_index("prompt")


def rl_change(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """What two ReST-EM rounds changed, passage by passage: per prompt and passage, `columns` after RL minus
    before (a table with prompt, round and passage_id columns, one row per run and passage)."""
    wide = table.pivot_table(index=["prompt", "passage_id"], columns="round", values=columns, sort=False)
    change = pd.DataFrame({c: wide[c, ROUNDS[1]] - wide[c, ROUNDS[0]] for c in columns}).dropna(how="all")
    return change.reset_index()


def review_table(judged: pd.DataFrame, edits: pd.DataFrame, passages) -> pd.DataFrame:
    """One row per judged self-edit, as `Review(..., read_only=True)` shows it: prompt, round, passage
    (`context_id`, `title`, `context`), `sample`, `self_edit`, `reward`, `baseline`, `gain`, and `questions`:
    per question a dict of the question, the gold `answer`, the answers `before` and `after` training,
    GPT-4.1's verdicts on them (`before_correct`, `after_correct`) and, where `judged` has a
    `grader_score` column, the kit grader's scores (`before_score`, `after_score`)."""
    keys = [*RUN_KEY, "passage_id", "sample"]
    number = judged.groupby([*keys, "rep", "kind"], sort=False).cumcount()  # the question's place in its passage
    scored = "grader_score" in judged.columns
    sides = []
    for kind, side in (("baseline", "before"), ("adapter", "after")):
        part = judged[judged.kind == kind].assign(number=number)
        columns = {"prediction": side, "reference_correct": f"{side}_correct",
                   **({"grader_score": f"{side}_score"} if scored else {})}
        keep = [*keys, "rep", "number", "question", "answer"] if kind == "baseline" else [*keys, "rep", "number"]
        sides.append(part[[*keep, *columns]].rename(columns=columns))
    questions = sides[0].merge(sides[1], on=[*keys, "rep", "number"], how="inner", validate="one_to_one")
    fields = ["question", "answer", "before", "after", "before_correct", "after_correct",
              *(["before_score", "after_score"] if scored else [])]
    grouped: dict[tuple, list[dict]] = {}
    for key, record in zip(questions[keys].itertuples(index=False, name=None), questions[fields].to_dict("records")):
        grouped.setdefault(key, []).append(record)
    cards = pd.Series(grouped, name="questions")
    cards.index.names = keys
    table = (accuracy_by_passage(judged).merge(cards.reset_index().assign(sample=lambda t: t["sample"].astype(int)),
                                               on=[*RUN_KEY, "passage_id"], how="inner"))
    texts = edits.assign(sample=edits["sample"].astype(int))[[*RUN_KEY, "passage_id", "sample", "self_edit"]]
    table = table.merge(texts, on=[*RUN_KEY, "passage_id", "sample"], how="left")
    by_id = {p.id: p for p in passages}
    if missing := sorted(set(table.passage_id) - set(by_id)):
        raise ValueError(f"review_table: no passage given for {missing[:5]}; pass the passages the runs judged")
    return table.assign(context_id=table.passage_id, title=table.passage_id.map(lambda i: by_id[i].title),
                        context=table.passage_id.map(lambda i: by_id[i].context))


def grade(judged: pd.DataFrame, grader: str | Grader = "fitted") -> pd.DataFrame:
    """`judged` with `grader_score`: the grader's score for every answer. Each distinct (question, gold,
    answer) is graded once: the runs share many answers (their no-edit baselines above all)."""
    triples = judged[["question", "answer", "prediction"]].fillna("")
    unique = triples.drop_duplicates()
    scores = get_grader(grader)(list(unique.prediction), list(unique.answer), list(unique.question))
    lookup = dict(zip(unique.itertuples(index=False, name=None), scores))
    return judged.assign(grader_score=[float(lookup[t]) for t in triples.itertuples(index=False, name=None)])


def agreement_table(scored: pd.DataFrame, grader_name: str) -> pd.DataFrame:
    """Per run (rows in PROMPT_SETS' order): the grader of `grade` against GPT-4.1 (`agreement.agreement`'s
    share of equal verdicts, Cohen's kappa, false accepts and rejects) and the accuracies each gives, after
    training and before. `in_sample` marks runs whose verdicts the shipped fitted grader was fitted on."""
    fitted_on = set(shipped_fitted().weights.get("fitted_on", [])) if grader_name == "fitted" else set()
    rows = []
    for (prompt, rnd, condition), part in scored.groupby(RUN_KEY, sort=False):
        lookup = dict(zip(part[["question", "answer", "prediction"]].fillna("").itertuples(index=False, name=None),
                          part.grader_score))

        def stored(predictions, answers, questions, lookup=lookup):  # the scores `grade` gave, not computed again
            return [lookup[t] for t in zip(questions, answers, predictions)]

        found = agreement(stored, part, name=grader_name)
        rows.append({"prompt": prompt, "round": rnd, "condition": condition,
                     **{k: found[k] for k in ("grader", "n", "agreement", "kappa", "false_accept", "false_reject")},
                     **{f"{kind}_{who}": found["accuracy"][kind][who] for kind in ("adapter", "baseline")
                        for who in ("grader", "reference")},
                     "in_sample": condition in fitted_on})
    return pd.DataFrame(rows)


def disagreements(scored: pd.DataFrame) -> pd.DataFrame:
    """The answers where the grader's verdict (score >= 0.5) and GPT-4.1's differ, with `which`: "grader
    accepts, GPT-4.1 rejects" or the converse."""
    accepts = scored.grader_score >= 0.5
    differ = scored[accepts != scored.reference_correct.astype(bool)]
    which = (differ.grader_score >= 0.5).map({True: "grader accepts, GPT-4.1 rejects",
                                              False: "grader rejects, GPT-4.1 accepts"})
    return differ.assign(which=which)[[*RUN_KEY, "passage_id", "kind", "question", "answer", "prediction",
                                       "reference_correct", "grader_score", "which"]].reset_index(drop=True)


def baseline_spread(judged: pd.DataFrame) -> dict:
    """Why the runs' no-edit baselines differ: each run's baseline accuracy, their range, the share of
    questions the untrained model answered word for word alike in every run, and how often GPT-4.1 gave one
    (question, answer) the same verdict each time it judged it (`agreement.judge_consistency`)."""
    base = judged[judged.kind == "baseline"]
    per_run = accuracy_by_passage(judged).groupby("condition", sort=False).baseline.mean()
    answers = base.groupby(["passage_id", "question"]).prediction.nunique()
    return {"per_run": {k: float(v) for k, v in per_run.items()}, "low": float(per_run.min()),
            "high": float(per_run.max()), "n_runs": int(base.condition.nunique()),
            "same_answer_every_run": float((answers == 1).mean()), **judge_consistency([base])}
