"""Constrained decoding: generation that can only write text matching a JSON schema (ARC's self-edit config).

    from seal_kit.constrained import schema_processor
    processor = schema_processor(tokenizer, SELF_EDIT_SCHEMA, prompt_length=batch["input_ids"].shape[1])
    model.generate(**batch, logits_processor=LogitsProcessorList([processor]))

`generation.generate(..., json_schema=...)` does this for every batch; the vllm backend hands the schema to
vLLM's own guided decoding. The grammar work is lm-format-enforcer's (`pip install 'seal-kit[constrained]'`):
its JSON-schema parser says which tokens may come next. Its transformers integration does not import under
transformers 5, so the two small pieces that tie it to a tokenizer and to `generate` are here.
"""
from __future__ import annotations

import functools

import torch

_TOKENIZER_DATA: dict = {}  # one prefix tree per tokenizer (building it walks the whole vocabulary)


def _enforcer_library():
    try:
        import lmformatenforcer
    except ImportError:
        raise ImportError("constrained decoding needs lm-format-enforcer: pip install 'seal-kit[constrained]' "
                          "(or lm-format-enforcer)") from None
    return lmformatenforcer


def _decode(tokenizer, tokens: list[int]) -> str:
    return tokenizer.decode(tokens).rstrip("\ufffd")  # a token ending mid-character decodes to U+FFFD


def tokenizer_data(tokenizer, eos_ids: set[int]):
    """The enforcer's view of a tokenizer: every regular token's text with its leading space, if any (read
    by decoding it after a digit, since decoding a token alone drops that space in some tokenizers)."""
    key = (id(tokenizer), tuple(sorted(eos_ids)))
    if key not in _TOKENIZER_DATA:
        lib = _enforcer_library()
        anchor = tokenizer.encode("0", add_special_tokens=False)[-1]
        special, size = set(tokenizer.all_special_ids), len(tokenizer)
        tokens = []
        for i in range(size):
            if i in special:
                continue
            text = tokenizer.decode([anchor, i])[1:]
            tokens.append((i, text, len(text) > len(tokenizer.decode([i]))))
        _TOKENIZER_DATA[key] = lib.TokenEnforcerTokenizerData(tokens, functools.partial(_decode, tokenizer),
                                                              sorted(eos_ids), False, size)
    return _TOKENIZER_DATA[key]


class SchemaProcessor:
    """A transformers logits processor: each row's next token limited to those that keep its generated text
    (after `prompt_length` tokens of left-padded prompt) a prefix of JSON matching the schema; end of
    sequence only once the object is complete. Rows that have ended are left alone."""

    def __init__(self, enforcer, prompt_length: int, eos_ids: set[int]):
        self.enforcer, self.prompt_length, self.eos_ids = enforcer, prompt_length, eos_ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids[:, self.prompt_length:].tolist()):
            if any(t in self.eos_ids for t in ids):  # finished: whatever comes is cut at the first EOS
                mask[row] = 0
                continue
            allowed = self.enforcer.get_allowed_tokens(ids).allowed_tokens
            mask[row, [t for t in allowed if t < scores.shape[1]]] = 0
        return scores + mask


def schema_processor(tokenizer, schema: dict, prompt_length: int, eos_ids: set[int] | None = None,
                     max_whitespace: int = 1) -> SchemaProcessor:
    """The processor for one batch. `max_whitespace`: consecutive whitespace characters allowed between JSON
    tokens (a small model would otherwise spend its token budget on newlines and never close the object)."""
    lib = _enforcer_library()
    eos = set(eos_ids or {tokenizer.eos_token_id})
    parser = lib.JsonSchemaParser(schema)
    enforcer = lib.TokenEnforcer(tokenizer_data(tokenizer, eos), parser)  # gives the parser its config
    parser.config.max_consecutive_whitespaces = max_whitespace
    return SchemaProcessor(enforcer, prompt_length, eos)
