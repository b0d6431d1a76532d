"""SEAL's knowledge-incorporation setting (SQuAD passages), from contexts to the task the outer loop runs.

    from seal_kit.knowledge.data import load_passages
    from seal_kit.knowledge.task import KnowledgeTask
    task = KnowledgeTask(model, tokenizer)                 # then rest_em.RestEM(task, train, held_out, ...)

    passages      the context type (title, passage, questions) and its parser
    data          where passages come from: the built-in set, the paper's files, SQuAD, files, hub datasets
    reference     the SEAL authors' published files: passages, self-edits, SFT data, graded evaluation runs
    graders       is an answer right: exact match, token F1, a fitted grader, an LLM judge
    agreement     how a grader agrees with the paper's GPT-4.1 verdicts
    task          the setting: self-edit -> documents -> adapter -> closed-book answers -> reward
    cpt           continued pretraining: many passages (and their self-edits) in one adapter
    forgetting    self-edits merged in sequence, and what the earlier passages keep
    strength_map  where self-edits help: accuracy over inner-loop settings, against the step-matched passage
    evidence      the paper's own evidence: prompts x RL rounds, from its published self-edits and verdicts
    edit_stats    what self-edits look like: length, diversity, copying from the passage

The SEAL core (prompts, self_edit, inner_loop, reward, selection, generator, rest_em, executors) imports
nothing from here: a self-edit's context is anything with an id, a title and a context (`prompts.Context`).
"""
