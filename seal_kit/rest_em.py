"""The outer loop: ReST-EM rounds that teach the generator to write better self-edits.

    from seal_kit.rest_em import RestEM, RestEMConfig
    loop = RestEM(task, train, held_out, RestEMConfig(rounds=2), run)   # task: a reward.SelfEditTask
    done = loop.run()            # resumes from the run directory; False while a round awaits review
    RestEM(..., warm_start=[[(passage, edit), ...]])   # round 0 keeps these edits instead of selecting its own
    loop.rounds                  # one row per round: mean/best reward, held-out accuracy, n_kept, seconds
    loop.candidates()            # one row per scored self-edit (reward averaged over seeds)
    RestEM(..., executor=InProcess(batch=4))   # or RayExecutor(...): where candidates are scored
    RestEM(..., policy=lambda c: top_fraction(c, fraction=0.1))    # any selection (seal_kit.selection)
    run.finish(loop.metrics())

One round r: sample K self-edits per training context from the current generator (round 0: the
untrained model) -> score each with the inner loop under S seeds (`task.score`) -> sample and score
`eval_k` edits per held-out context (the held-out accuracy of this generator) -> keep some edits by
a selection policy -> SFT the generator on the kept (prompt -> self-edit) pairs, loss on the
self-edit only (a task's strategy of stages: every stage's (prompt -> output), `strategies.training_pairs`).
After the last update one more round samples and scores without updating: ROUNDS updates give ROUNDS + 1 rows.

A warm start gives the first rounds' kept edits instead of selecting them: `warm_start[r]` is a list of
(context, self-edit) pairs, say the paper's kept edits (`reference.warm_start_edits`), and round r then
samples no training edits of its own; it still scores held-out edits, so round 0 measures the untrained
generator and round 1 the warm-started one on the same held-out contexts. With every update warm-started
and `final_train=False` no training contexts are needed at all.

The generator (`seal_kit.generator`) is a second LoRA adapter on the same base model. `update="stack"`
keeps training it round after round and switches it off for the inner loop, so every reward is
measured on the same base θ; `update="merge"` adds each round's update into θ and trains the next
round's as a fresh adapter on the merged θ (the paper's one-model view and the reference's procedure:
the inner loop then adapts the updated θ and baselines are recomputed). Which edits are kept
is a policy of `seal_kit.selection`.

Nothing is lost on interruption: the generator's config is written to `generator.json` at start,
each round's sampled edits are saved before scoring, every scored (candidate, seed) is appended to
`candidates.jsonl` as it finishes, the generator is saved after each update, and
`round-<r>/summary.json` marks a finished round (`generator.saved_generator` reads them back). Running again with the same run
directory (and config: `start_run` refuses a changed one) skips what is done and, everything being
seeded, reaches the same numbers as an uninterrupted run. Resume on a freshly loaded model (restart
the kernel): the generator is rebuilt from its saved updates. On CUDA "the same numbers" also needs
deterministic kernels (`torch.use_deterministic_algorithms(True)`, `CUBLAS_WORKSPACE_CONFIG=:4096:8`);
without them a resumed run matches an uninterrupted one only up to floating-point noise.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import pandas as pd
from filelock import Timeout
from tqdm.auto import tqdm

from . import progress
from .executors import InProcess
from .generator import CONFIG_FILE, Generator, GeneratorConfig, round_dir, saved_generator
from .reward import SelfEditTask
from .runs import Run, fingerprint, run_lock
from .selection import SELECTIONS, curated, load_decisions, top_fraction
from .self_edit import SamplingConfig
from .strategies import training_pairs
from .stats import mean_interval


@dataclass
class RestEMConfig:
    rounds: int = field(default=2, metadata={"help": "generator updates (paper: 2); rounds + 1 rows are scored"})
    seeds: int = field(default=1, metadata={"help": "inner-loop seeds per training candidate, reward averaged (paper: 3)"})
    selection: str = field(default="best_of_k", metadata={
        "help": "best_of_k (paper: the best edit per context, even without gain), improves (reward > baseline), "
                "top_fraction (the best share of all candidates), or human (the review widget's decisions)"})
    top_fraction: float = field(default=0.25, metadata={"help": "share kept by top_fraction"})
    keep_empty_edits: bool = field(default=False, metadata={
        "help": "let automatic policies keep empty or degenerate edits (status 'empty_edit'). They score as "
                "training on the passage alone, which can beat a small model's own edits: keeping them teaches "
                "the generator to write nothing (a 135M model collapses to that within one round)"})
    eval_k: int = field(default=1, metadata={"help": "self-edits per held-out context, scored under one seed"})
    seed: int = field(default=0, metadata={"help": "base of every seed: sampling, inner loops, generator SFT"})
    final_train: bool = field(default=True, metadata={
        "help": "after the last update, score the training contexts' edits too (False: held-out only; saves "
                "a round of K x seeds inner loops per training context)"})
    sampling: SamplingConfig = field(default_factory=SamplingConfig, metadata={
        "help": "how self-edits are sampled; sampling.k is K per training context (paper: 5)"})
    generator: GeneratorConfig = field(default_factory=GeneratorConfig, metadata={
        "help": "the generator's LoRA SFT on kept pairs, and how updates accumulate"})

    def __post_init__(self):
        if self.selection not in (*SELECTIONS, "human"):
            raise ValueError(f"RestEMConfig.selection must be one of {[*SELECTIONS, 'human']}, got {self.selection!r}")
        if self.rounds < 0 or self.seeds < 1 or self.eval_k < 0 or self.sampling.k < 1:
            raise ValueError(f"RestEMConfig needs rounds >= 0, seeds >= 1, eval_k >= 0 and sampling.k >= 1; got "
                             f"{self.rounds}, {self.seeds}, {self.eval_k} and {self.sampling.k}")
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"RestEMConfig.top_fraction must be in (0, 1], got {self.top_fraction}")
        if not self.final_train and self.eval_k == 0:
            raise ValueError("RestEMConfig: with final_train=False and eval_k=0 the last round would sample and score "
                             "nothing; set eval_k >= 1 (held-out edits) or final_train=True")


class RestEM:
    """ReST-EM over a SelfEditTask; all state lives in `run.path` (see the module docstring)."""

    def __init__(self, task: SelfEditTask, train: list, held_out: list, config: RestEMConfig, run: Run,
                 policy: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                 on_candidate: Callable[[dict], None] | None = None, on_round: Callable[[dict], None] | None = None,
                 progress: bool = True, executor=None, warm_start: Sequence[Sequence[tuple]] = ()):
        if len(warm_start) > config.rounds or not all(warm_start):
            raise ValueError(f"RestEM: warm_start gives kept edits for {len(warm_start)} rounds "
                             f"({[len(w) for w in warm_start]} pairs), but there are {config.rounds} updates and "
                             "each warm-started one needs at least one (context, self-edit) pair")
        if not train and (len(warm_start) < config.rounds or config.final_train):
            raise ValueError("RestEM needs at least one training context (none is needed only when every update "
                             "is warm-started and final_train is False); got none")
        for name, contexts in (("train", train), ("held_out", held_out)):
            ids = [c.id for c in contexts]
            if len(set(ids)) != len(ids):
                raise ValueError(f"RestEM: {name} contexts must have unique ids; repeated: "
                                 f"{sorted({i for i in ids if ids.count(i) > 1})}")
        learned_from = [*train, *(c for pairs in warm_start for c, _ in pairs)]
        shared = sorted({c.id for c in learned_from} & {c.id for c in held_out})
        if shared:
            raise ValueError(f"RestEM: contexts {shared} are both training (or warm-start) and held-out; held-out "
                             "accuracy must come from contexts the generator never trained on")
        contexts = {"train": [c.id for c in train], "held_out": [c.id for c in held_out],
                    "policy": getattr(policy, "__name__", config.selection),
                    "content": fingerprint([*train, *held_out])}  # the same ids with edited text are other data
        if warm_start:  # other kept edits are another experiment; runs without a warm start pin no such key
            contexts["warm_start"] = [hashlib.sha256(json.dumps([[c.id, edit] for c, edit in pairs]).encode())
                                      .hexdigest()[:12] for pairs in warm_start]
        for name, pinned, what in (("contexts.json", contexts,
                                    "other contexts, another selection policy or another warm start"),
                                   (CONFIG_FILE, asdict(config.generator), "another generator config")):
            saved = run.path / name
            before = json.loads(saved.read_text()) if saved.exists() else None
            if before is not None and before != json.loads(json.dumps(pinned)):
                edited = sorted(k for k, v in pinned.get("content", {}).items()
                                if k in before.get("content", {}) and before["content"][k] != v)
                if edited and all(before.get(k) == pinned[k] for k in ("train", "held_out", "policy")):
                    what = f"other text under the same ids (edited since: {', '.join(edited)})"
                raise ValueError(f"{run.path} was started on {what} than now ({saved} lists them); resuming would "
                                 "mix two experiments: use another run directory")
            run.write_json(name, pinned)
        self.task, self.config, self.store = task, config, run  # the Run holding every file
        self.train, self.held_out = list(train), list(held_out)
        self.warm_start = [list(pairs) for pairs in warm_start]
        self.by_id = {c.id: c for c in self.train + self.held_out}
        self.policy = policy or self._named_policy()  # None: "human", a person's decisions
        self.on_candidate, self.on_round, self.progress = on_candidate, on_round, progress
        self.executor = executor or InProcess()  # where candidates are scored (seal_kit.executors)
        self.generator = Generator(task.inner, config.generator)
        self.log = run.log("candidates")
        self.awaiting_review: int | None = None
        self.summaries: list[dict] = []
        self.generator_losses: dict[int, list[float]] = {}
        self._stacked_from: Path | None = None  # the saved generator a stacked update continues from
        self._stale: str | None = None
        self._restore()

    def _named_policy(self) -> Callable[[pd.DataFrame], pd.DataFrame] | None:
        if self.config.selection == "top_fraction":
            return partial(top_fraction, fraction=self.config.top_fraction)
        return SELECTIONS.get(self.config.selection)

    # -- files ---------------------------------------------------------------------------------------
    def _round_dir(self, r: int) -> Path:
        return round_dir(self.store.path, r)

    def _restore(self) -> None:
        """Reload finished rounds and rebuild the generator they produced (replaying merged updates); a run
        finished before is only shown, so its generator (not shipped with `seal_kit.results`) is not loaded."""
        _, updates = saved_generator(self.store.path)
        for path in updates if not getattr(self.store, "finished_before", False) else []:
            if self.generator.restore(path):
                self.task.clear_baselines()
        self._stacked_from = updates[-1] if updates else None
        for r in range(self.config.rounds + 1):
            summary_path = self._round_dir(r) / "summary.json"
            if not summary_path.exists():
                break
            self.summaries.append(json.loads(summary_path.read_text()))
            if r < self.config.rounds:
                self.generator_losses[r] = json.loads((self._round_dir(r) / "generator_losses.json").read_text())

    def _self_edits(self, r: int) -> pd.DataFrame:
        """This round's sampled edits: read back if saved, else sampled from the generator and saved
        before any is scored (re-sampling after a crash would give other edits)."""
        path = self._round_dir(r) / "self_edits.parquet"  # typed: an edit reading "1.5" stays a string
        if path.exists():
            return pd.read_parquet(path)
        train = self.train if (r < self.config.rounds or self.config.final_train) and r >= len(self.warm_start) else []
        rows = [{"round": r, "split": split, "context_id": c.id, "sample": s, "prompt": self.task.self_edit_prompt(c)}
                for split, contexts, k in (("train", train, self.config.sampling.k),
                                           ("eval", self.held_out, self.config.eval_k))
                for c in contexts for s in range(k)]
        sampling = replace(self.config.sampling, seed=self.config.sampling.seed + self.config.seed + 1000 * r)
        strategy = self.task.strategy  # several stages: each round writes through them (strategies.Strategy)
        table = self.generator.sample(rows, sampling, saved=self._stacked_from, progress=self.progress,
                                      desc=f"round {r}: sampling self-edits", accept=self.task.accepts,
                                      schema=self.task.self_edit_schema, strategy=strategy, render=self.task.render,
                                      contexts=[self.by_id[row["context_id"]] for row in rows] if strategy else None)
        self.store.write_table(f"round-{r}/self_edits", table)
        return pd.read_parquet(path)  # the same table a resumed run will read

    # -- one round -----------------------------------------------------------------------------------
    def _score(self, r: int, edits: pd.DataFrame) -> None:
        done = {(x["round"], x["split"], x["context_id"], x["sample"], x["seed"]) for x in self.log.records}
        jobs = [(e, self.config.seed + s) for e in edits.itertuples()
                for s in range(self.config.seeds if e.split == "train" else 1)]
        todo = [(e, seed) for e, seed in jobs if (r, e.split, e.context_id, e.sample, seed) not in done]
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"round {r}: scoring self-edits",
                   disable=not self.progress)
        self.executor.prepare(self.store.path)  # Ray workers replay the merged updates saved so far
        items = [(self.by_id[e.context_id], e.self_edit, seed) for e, seed in todo]
        for n, scored in self.executor.score(self.task, items):  # each row saved as it arrives
            e, seed = todo[n]
            record = {"round": r, "split": e.split, "context_id": e.context_id, "sample": e.sample, "seed": seed,
                      "self_edit": e.self_edit, **{k: v for k, v in scored.items() if k not in ("context_id", "seed")}}
            self.log.append(record)
            bar.update(1)
            bar.set_postfix(reward=f"{scored['reward']:.2f}")
            progress.note(f"round {r}: scoring self-edits", bar.n, len(jobs), f"reward {scored['reward']:.2f}")
            if self.on_candidate:
                self.on_candidate(record)
        bar.close()

    def candidates(self, r: int | None = None) -> pd.DataFrame:
        """One row per scored self-edit: reward, baseline and gain averaged over its seeds, with the
        prompt, the edit, its training documents and the context, as the review widget shows them."""
        if not self.log.records:
            return pd.DataFrame(columns=["round", "split", "context_id", "sample", "reward"])
        scored = pd.DataFrame(self.log.records)
        if r is not None:
            scored = scored[scored["round"] == r]
        scored["reason"] = scored["reason"] if "reason" in scored else ""  # logs before failed edits had reasons
        keys = ["round", "split", "context_id", "sample"]
        table = scored.groupby(keys, sort=True).agg(
            reward=("reward", "mean"), baseline=("baseline", "mean"), gain=("gain", "mean"), n_seeds=("seed", "size"),
            status=("status", "first"), reason=("reason", "first"), self_edit=("self_edit", "first"), documents=("documents", "first"),
            losses=("losses", "first"), train_seconds=("train_seconds", "sum"),
            eval_seconds=("eval_seconds", "sum")).reset_index()
        drawn = {(x["round"], x["split"], x["context_id"], x["sample"]): x
                 for rr in table["round"].unique() for x in self._self_edits(int(rr)).to_dict("records")}
        rows = [drawn[k] for k in zip(*(table[c] for c in keys))]
        table["prompt"] = [x["prompt"] for x in rows]  # draws until accepted (SamplingConfig.max_attempts), below
        table["attempts"] = [int(x.get("attempts", 1)) for x in rows]
        table["accepted"] = [bool(x.get("accepted", True)) for x in rows]
        table["context"] = [self.task.describe(self.by_id[c]) for c in table.context_id]
        if any("stages" in x for x in rows):  # a strategy of stages: every generation, and why an edit is empty
            table["stages"] = [[dict(s) for s in x.get("stages", [])] for x in rows]
            table["reason"] = [why or str(x.get("reason") or "") for why, x in zip(table.reason, rows)]
        return table

    def _select(self, r: int, train: pd.DataFrame) -> pd.DataFrame | None:
        if self.policy is None:  # "human"
            decisions = load_decisions(self.store.path)
            decided = decisions[(decisions["round"] == r) & (decisions["decision"] != "")]
            if decided.empty:
                return None
            return curated(train, decisions, round=r)
        if not self.config.keep_empty_edits:
            train = train[train.status == "ok"]
        return self.policy(train)

    def _kept(self, r: int, train: pd.DataFrame) -> pd.DataFrame | None:
        """The edits round r keeps: read back if chosen before (a resumed round keeps the same ones even
        if review decisions changed since), else chosen by the policy; None while awaiting review."""
        path = self._round_dir(r) / "kept.parquet"
        if path.exists():
            return pd.read_parquet(path)
        kept = self._warm_start(r) if r < len(self.warm_start) else self._select(r, train)
        if kept is not None:
            self.store.write_table(f"round-{r}/kept", kept.sort_values(["context_id", "sample"]))
            kept = pd.read_parquet(path)
        return kept

    def _warm_start(self, r: int) -> pd.DataFrame:
        """Round r's given kept edits, prompted as this task prompts its generator."""
        return pd.DataFrame([{"round": r, "split": "warm_start", "context_id": c.id, "sample": n,
                              "prompt": self.task.self_edit_prompt(c), "self_edit": edit}
                             for n, (c, edit) in enumerate(self.warm_start[r])])

    def _update(self, r: int, kept: pd.DataFrame) -> list[float]:
        """SFT the generator on round r's kept pairs and save it; merged into the base if so configured.
        An exception in here leaves the in-memory generator half-updated: the loop then refuses to go
        on until rebuilt on a freshly loaded model, which resumes cleanly from the files."""
        self._stale = (f"an interruption during round {r}'s generator update left the model's weights mid-update in "
                       "memory: load the model again and build a new RestEM on the same run directory to resume")
        merge = self.config.generator.update == "merge"
        result = self.generator.update(training_pairs(kept), seed=self.config.seed + r,
                                       start=None if merge else self._stacked_from, progress=self.progress)
        self.generator.save(self._round_dir(r) / "generator")
        self._stacked_from = self._round_dir(r) / "generator"
        if merge:
            self.generator.merge()
            self.task.clear_baselines()
        self._stale = None
        return result.losses

    def _finish_round(self, r: int, started: float) -> dict | None:
        began = time.perf_counter()
        table = self.candidates(r)
        train, held_out = table[table.split == "train"], table[table.split == "eval"]
        edits = self._self_edits(r)

        def mean(values):
            return float(values.mean()) if len(values) else None
        summary = {
            "round": r, "mean_reward": mean(train.reward), "best_reward": mean(train.groupby("context_id").reward.max()),
            "baseline": mean(train.baseline), "mean_gain": mean(train.gain),
            "eval_accuracy": mean(held_out.reward), "eval_baseline": mean(held_out.baseline),
            "n_candidates": len(train), "empty_edits": int((train.status == "empty_edit").sum()),
            "mean_edit_tokens": mean(edits[edits.split == "train"].tokens), "n_kept": 0, "updated": False,
            "generator_loss": None}
        if r < self.config.rounds:
            kept = self._kept(r, train)
            if kept is None:
                self.awaiting_review = r
                return None
            summary["n_kept"], summary["warm_start"] = len(kept), r < len(self.warm_start)
            losses = self._update(r, kept) if len(kept) else []
            summary.update(updated=bool(losses), generator_loss=losses[-1] if losses else None)
            self.store.write_json(f"round-{r}/generator_losses.json", losses)
            self.generator_losses[r] = losses
        # Resume-proof cost: what was recorded for sampling, scoring and the update, not this process's clock.
        summary["seconds"] = float(edits.seconds.sum() + table.train_seconds.sum() + table.eval_seconds.sum()
                                   + (time.perf_counter() - began if summary["updated"] else 0.0))
        summary["wall_seconds"] = time.perf_counter() - started  # this process's share (less, if it resumed)
        self.store.write_json(f"round-{r}/summary.json", summary)  # written last: the round is done
        return summary

    def run(self) -> bool:
        """Run (or resume) every round. Returns True when all are done, False when a round waits for
        human decisions (selection "human"): review it, then call `run()` again. One process at a time
        may work on a run directory."""
        if self._stale:
            raise RuntimeError(self._stale)
        try:
            with run_lock(self.store.path):  # the one start_run took, re-entrant in this process
                return self._run()
        except Timeout:
            raise RuntimeError(f"another process is running {self.store.path} right now; wait for it or stop it "
                               "before resuming here") from None

    def _run(self) -> bool:
        self.awaiting_review = None
        total = self.config.rounds + 1
        bar = tqdm(total=total, initial=len(self.summaries), desc="ReST-EM rounds", disable=not self.progress)
        for r in range(len(self.summaries), total):
            started = time.perf_counter()
            edits = self._self_edits(r)
            self._score(r, edits)
            summary = self._finish_round(r, started)
            if summary is None:
                bar.close()
                print(f"round {r} awaits review: accept or reject its self-edits in the review widget, then run "
                      "loop.run() again")
                return False
            self.summaries.append(summary)
            bar.update(1)
            accuracy = summary.get("eval_accuracy")
            progress.note("ReST-EM rounds", bar.n, total, "" if accuracy is None else f"held-out accuracy {accuracy:.1%}")
            if summary["mean_reward"] is not None:
                bar.set_postfix(mean_reward=f"{summary['mean_reward']:.2f}")
            if self.on_round:
                self.on_round(summary)
        bar.close()
        return True

    @property
    def rounds(self) -> pd.DataFrame:
        return pd.DataFrame(self.summaries)

    def held_out_accuracy(self, level: float = 0.95) -> pd.DataFrame:
        """One row per round: held-out accuracy (self-edits written by that round's generator, averaged per
        passage) with its bootstrap interval over held-out passages, and its gain over round 0 paired passage
        by passage, with its interval: a round learned something when `gain_low` > 0."""
        columns = ["round", "n_passages", "accuracy", "low", "high", "gain_over_round_0", "gain_low", "gain_high"]
        table = self.candidates()
        held = table[table.split == "eval"]
        if held.empty:
            return pd.DataFrame(columns=columns)
        per_passage = held.groupby(["context_id", "round"]).reward.mean().unstack("round")  # passages x rounds
        first = per_passage.columns.min()
        rows = []
        for r in per_passage.columns:
            accuracy = per_passage[r].dropna()
            gain = (per_passage[r] - per_passage[first]).dropna()  # passages scored in both rounds
            rows.append(dict(zip(columns, (int(r), len(accuracy), *mean_interval(accuracy.to_numpy(), level),
                                           *mean_interval(gain.to_numpy(), level)))))
        return pd.DataFrame(rows, columns=columns)

    def metrics(self) -> dict:
        """For metrics.json: one entry per round (round, mean_reward, eval_accuracy, n_kept, ...) and the
        held-out accuracy per round with its interval and paired gain over round 0 (`held_out_accuracy`)."""
        return {"rounds": self.summaries, "n_train": len(self.train), "n_held_out": len(self.held_out),
                "selection": self.config.selection,
                "held_out_accuracy": self.held_out_accuracy().to_dict("records")}
