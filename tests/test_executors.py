"""Executors: Ray workers (2, local, CPU) score exactly what the in-process executor scores."""
from functools import partial

import pytest

from seal_kit.knowledge.data import QA, Passage
from seal_kit.executors import InProcess
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, load_task
from seal_kit.rest_em import RestEM, RestEMConfig
from seal_kit.runs import start_run
from seal_kit.self_edit import SamplingConfig

ray = pytest.importorskip("ray")

TASK = partial(load_task, "tiny", inner=InnerLoopConfig(epochs=1, rank=4, alpha=8), evaluation=EvalConfig(max_new_tokens=6))
PASSAGES = [Passage(f"p{i}", f"Place {i}", f"Place {i} lies by the river Arn{i}. Its mayor is Tovin{i}.",
                    (QA(f"Who is the mayor of Place {i}?", f"Tovin{i}"),)) for i in range(3)]
ITEMS = [(p, f"Tovin{p.id[1]} is mayor.\nThe river is Arn{p.id[1]}.", seed) for p in PASSAGES for seed in (0, 1)]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def comparable(row):
    return {k: row[k] for k in ("context_id", "seed", "reward", "baseline", "answers", "steps", "tokens", "documents")}


def test_ray_workers_score_what_in_process_scores(cluster):
    from seal_kit.executors import RayExecutor

    local = dict(InProcess().score(TASK(), ITEMS))
    executor = RayExecutor(TASK, workers=2, batch=2)
    try:
        remote = dict(executor.score(None, ITEMS))
        assert sorted(remote) == list(range(len(ITEMS)))
        for n in range(len(ITEMS)):
            assert comparable(remote[n]) == comparable(local[n])
            assert remote[n]["losses"] == pytest.approx(local[n]["losses"], abs=1e-4)
    finally:
        executor.close()


def test_rest_em_round_on_ray_equals_in_process(cluster, tmp_path):
    """A 1-update run with merged generator updates: workers replay the merge before round 1's scoring."""
    from seal_kit.executors import RayExecutor

    config = RestEMConfig(rounds=1, eval_k=1, sampling=SamplingConfig(k=2, max_new_tokens=12))
    config.generator.update, config.generator.epochs = "merge", 1

    def run(name, executor):
        task = TASK()
        loop = RestEM(task, PASSAGES[:2], PASSAGES[2:], config, start_run(name, tmp_path / name, {"name": name}),
                      progress=False, executor=executor)
        assert loop.run()
        assert loop.summaries[0]["updated"]  # round 1 was scored on the merged generator update
        return loop.candidates().sort_values(["round", "split", "context_id", "sample"]).reset_index(drop=True)

    local = run("local", None)
    executor = RayExecutor(TASK, workers=2)
    try:
        remote = run("ray", executor)
    finally:
        executor.close()
    assert list(remote["self_edit"]) == list(local["self_edit"])
    assert list(remote["reward"]) == list(local["reward"])
    assert set(local["round"]) == {0, 1}


def test_choose_names_the_executors():
    from seal_kit.executors import choose

    assert choose("local", batch=3).batch == 3
    with pytest.raises(ValueError, match=r"executor must be one of \['local', 'ray'\], got 'dask'"):
        choose("dask")
    with pytest.raises(ValueError, match="needs a task factory"):
        choose("ray")
    with pytest.raises(ValueError, match="batch must be >= 1"):
        choose("local", batch=0)
