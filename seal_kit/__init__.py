"""seal-kit: SEAL (Self-Adapting Language Models) step by step, from notebooks or headless.

The data flow, module by module:
    data (passages) -> prompts -> self_edit (sampled edits -> training documents)
    -> inner_loop (LoRA adapter) -> knowledge (closed-book answers, graders -> reward) -> runs, plots
"""
import warnings

# peft still calls a transformers property deprecated in 5.x; the warning is noise for our users.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
