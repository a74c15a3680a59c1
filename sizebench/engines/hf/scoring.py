"""transformers' next-token distributions on a fixed sequence (teacher forcing), for the agreement stage."""

from __future__ import annotations


def vocabulary(tokenizer) -> list[str]:
    return [str(t) for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]


def begin_ids(tokenizer) -> list[int]:
    """The ids the tokenizer adds before an empty text (BOS for Gemma; none for GPT-NeoX or SmolLM2)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def next_token_logits(model, ids: list[int], first: int):
    import torch

    keep = len(ids) - first  # the rows at positions first .. len - 1; the last one predicts past the text
    with torch.inference_mode():
        inputs = torch.tensor([ids], device=model.device)
        try:
            logits = model(input_ids=inputs, logits_to_keep=keep).logits[0]
        except TypeError:  # a model class without logits_to_keep computes every row
            logits = model(input_ids=inputs).logits[0, first:]
    return logits[:-1].float().cpu().numpy()
