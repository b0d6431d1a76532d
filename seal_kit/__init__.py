"""seal-kit: SEAL (Self-Adapting Language Models) step by step, from notebooks or headless.

The SEAL core, in the paper's vocabulary (it imports no setting):
    prompts (self-edit prompts over any context with id/title/context) -> self_edit (sampled edits ->
    training documents) -> inner_loop on an adapters.AdapterSlot (LoRA) -> reward (a setting's score of
    the adapted model) -> selection (kept edits) -> generator (update) -> rest_em (rounds); generation and
    backends sample, executors say where candidates are scored, stats gives intervals.
Settings, each a package: knowledge/ (SQuAD passages: data, the paper's reference files, graders, the
    task, CPT, forgetting, the strength map, the paper's evidence) and arc/ (few-shot ARC).
Runs and tools: paths (where files are), storage (atomic writes, append logs), runs (a run's lifecycle),
    provenance, profiles, sweep (headless notebooks), report (a run's tables), plots, review, export,
    results (the shipped runs), workshop, models, precision, doctor, cli.
"""
