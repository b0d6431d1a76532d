"""seal-kit: SEAL (Self-Adapting Language Models) step by step, from notebooks or headless.

The data flow, module by module:
    data (passages) -> prompts -> self_edit (sampled edits -> training documents)
    -> inner_loop (LoRA adapter) -> reward (a task's score of the adapted model; knowledge: closed-book
    answers, graders) -> rest_em (kept edits -> generator update -> next round) -> runs, plots, review
"""
