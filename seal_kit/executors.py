"""Executors: where a round's candidate evaluations run. The outer loop hands one a list of
(context, self_edit, seed) items and appends each scored row to the run directory as it arrives,
so a resumed run skips what any executor finished.

    from seal_kit.executors import InProcess, RayExecutor
    InProcess()                                  # default: this process, one candidate at a time
    InProcess(batch=4)                           # 4 candidates' inner loops trained together (seal_kit.batched)
    RayExecutor(partial(load_task, "Qwen/Qwen2.5-0.5B-Instruct"), workers=8)   # one worker per GPU
    executor.prepare(run.path)                   # before a round: fold in the merged generator updates saved there
    for n, row in executor.score(task, items): ...   # (item index, scored row), in finishing order

A Ray worker builds its own task once with `factory()` (the base model is loaded once per worker)
and keeps it; the driver's task is only used in-process. Point it at a cluster with
`RayExecutor(..., address="ray://head:10001")` or `address="auto"` on a node of a running cluster
(`ray start --head` on one machine, `ray start --address=head:6379` on the others); every node
needs seal-kit and the model installed at the same paths (HF cache or local folder), and the run
directory on a shared filesystem when generator updates merge (workers read them from it).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from .batched import BatchedLoRA, check_batchable
from .generator import Generator, saved_generator
from .inner_loop import InnerLoopConfig


class InProcess:
    """Score in this process, `batch` candidates' inner loops at a time."""

    def __init__(self, batch: int = 1):
        if batch < 1:
            raise ValueError(f"InProcess: batch must be >= 1 (candidates trained together), got {batch}")
        self.batch = batch
        self._lora: BatchedLoRA | None = None

    def prepare(self, run_dir) -> None:
        """In-process the task's model already carries the generator's merged updates."""

    def score(self, task, items: list[tuple]) -> Iterator[tuple[int, dict]]:
        if self.batch > 1 and (self._lora is None or self._lora.inner is not task.inner):
            self._lora = BatchedLoRA(task.inner)
        for start in range(0, len(items), self.batch):
            rows = task.score_many(items[start:start + self.batch], self._lora if self.batch > 1 else None)
            yield from enumerate(rows, start)

    def close(self) -> None:
        pass


class ScoringWorker:
    """One Ray worker: its own task (model loaded once), replaying merged generator updates it is told of."""

    def __init__(self, factory: Callable, batch: int, threads: int | None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.task = factory()
        self.local = InProcess(batch)
        self.generator, self.updates = None, []

    def prepare(self, run_dir: str) -> int:
        """Fold into this worker's model the merged generator updates `run_dir` holds that it has not yet
        (a stacked generator never touches the inner loop's base: nothing to do)."""
        config, updates = saved_generator(run_dir)
        if config.update != "merge":
            updates = []
        if updates[:len(self.updates)] != self.updates:
            raise RuntimeError("ScoringWorker: the merged generator updates it already applied are not the start of "
                               f"{[str(u) for u in updates]}; start a new executor")
        if len(updates) > len(self.updates) and self.generator is None:
            self.generator = Generator(self.task.inner, config)
        for path in updates[len(self.updates):]:
            self.generator.restore(path)
            self.task.clear_baselines()
        self.updates = list(updates)
        return len(self.updates)

    def score(self, items: list[tuple]) -> list[tuple[int, dict]]:
        return list(self.local.score(self.task, items))

    def ready(self) -> bool:
        return True


class RayExecutor:
    """Fan candidate evaluations out over Ray workers, one per GPU (or per `cpus_per_worker` CPUs)."""

    def __init__(self, factory: Callable, workers: int | None = None, batch: int = 1, address: str | None = None,
                 gpus_per_worker: float | None = None, cpus_per_worker: int = 1, init: dict | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError("RayExecutor needs Ray: pip install 'seal-kit[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **(init or {}))
        resources = ray.cluster_resources()
        if gpus_per_worker is None:
            gpus_per_worker = 1 if resources.get("GPU", 0) >= 1 else 0
        if workers is None:
            workers = int(resources.get("GPU", 0) // gpus_per_worker) if gpus_per_worker else \
                int(resources.get("CPU", 1) // cpus_per_worker)
        if workers < 1:
            raise ValueError(f"RayExecutor: no room for a worker ({resources}); lower gpus_per_worker/cpus_per_worker")
        worker = ray.remote(ScoringWorker).options(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker)
        self.batch = batch
        self.workers = [worker.remote(factory, batch, cpus_per_worker) for _ in range(workers)]
        ray.get([w.ready.remote() for w in self.workers])  # fail here, not mid-round, if a model cannot load

    def prepare(self, run_dir) -> None:
        """Every worker replays the merged generator updates saved in `run_dir` (one filesystem for all)."""
        self.ray.get([w.prepare.remote(str(run_dir)) for w in self.workers])

    def score(self, task, items: list[tuple]) -> Iterator[tuple[int, dict]]:
        """Chunks of `batch` items go to whichever worker is free; rows come back as chunks finish."""
        chunks = [list(enumerate(items))[i:i + self.batch] for i in range(0, len(items), self.batch)]
        pending, idle = {}, list(self.workers)
        while chunks or pending:
            while chunks and idle:
                chunk, w = chunks.pop(0), idle.pop(0)
                pending[w.score.remote([item for _, item in chunk])] = (w, [n for n, _ in chunk])
            done, _ = self.ray.wait(list(pending), num_returns=1)
            w, indices = pending.pop(done[0])
            idle.append(w)
            for n, (_, row) in zip(indices, self.ray.get(done[0])):
                yield n, row

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)
        self.workers = []


EXECUTORS = ("local", "ray")


def choose(name: str = "local", batch: int = 1, factory: Callable | None = None, address: str | None = None,
           inner: InnerLoopConfig | None = None):
    """The executor a notebook parameter names: "local" (this process) or "ray" (workers building their
    task with `factory`; `address` None starts Ray on this machine, else joins that cluster). Given the
    `inner` loop's config, an inner loop that `batch` candidates cannot train together is refused now."""
    if inner is not None:
        check_batchable(inner, batch)
    if name == "local":
        return InProcess(batch)
    if name == "ray":
        if factory is None:
            raise ValueError("executor 'ray' needs a task factory for its workers (e.g. partial(load_task, MODEL))")
        return RayExecutor(factory, batch=batch, address=address)
    raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {name!r}")
