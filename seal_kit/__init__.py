"""seal-kit: SEAL (Self-Adapting Language Models) step by step, from notebooks or headless.

The data flow, module by module:
    passages / data / reference (contexts; the paper's own data) -> prompts -> self_edit (sampled edits
    -> training documents) -> inner_loop on an adapters.AdapterSlot (LoRA adapter) -> reward (a task's
    score of the adapted model; knowledge: closed-book answers, graders, agreement with the paper's judge)
    -> selection (kept edits) -> generator (update) -> rest_em (rounds) -> runs (with provenance), plots,
    review, stats
Settings: knowledge (SQuAD passages; cpt, forgetting) and arc/ (few-shot ARC). Generation goes through
backends.generate_with (constrained: JSON-schema decoding); candidates are scored where executors say.
"""
