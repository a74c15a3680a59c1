"""Prompt formats: how an instruction becomes the text a given model was trained to continue."""

from __future__ import annotations

from dataclasses import dataclass

DOLLY_INTRO = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
DOLLY_END = "### End"


@dataclass(frozen=True)
class Rendered:
    text: str
    stop_strings: tuple[str, ...]  # generation stops at the first of these; the answer is cut before it
    add_special_tokens: bool  # False when the format (a chat template) already carries BOS


def dolly(instruction: str, context: str | None = None) -> Rendered:
    """databricks-dolly-15k's instruction format; generation ends at `### End`."""
    parts = [DOLLY_INTRO, f"### Instruction:\n{instruction}"]
    if context:
        parts.append(f"Input:\n{context}")
    parts.append("### Response:\n")
    return Rendered("\n\n".join(parts), (DOLLY_END,), True)


def chat(instruction: str, context: str | None, tokenizer) -> Rendered:
    content = f"{instruction}\n\n{context}" if context else instruction
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    return Rendered(text, (), False)


def plain(instruction: str, context: str | None = None) -> Rendered:
    """For base models: a question/answer frame that a pretrained model continues with one answer."""
    text = f"Question: {instruction}\nAnswer:"
    if context:
        text = f"{context}\n\n{text}"
    return Rendered(text, ("\nQuestion:", "\n\n"), True)


FORMATS = ("dolly", "chat", "plain")


def render(name: str, instruction: str, context: str | None, tokenizer) -> Rendered:
    if name == "dolly":
        return dolly(instruction, context)
    if name == "chat":
        return chat(instruction, context, tokenizer)
    if name == "plain":
        return plain(instruction, context)
    raise ValueError(f"unknown prompt format {name!r}; known: {', '.join(FORMATS)}")


def cut_at_stop(answer: str, stop_strings: tuple[str, ...]) -> str:
    """The answer up to the first stop string (generation may overshoot by a token)."""
    cut = len(answer)
    for stop in stop_strings:
        index = answer.find(stop)
        if index != -1:
            cut = min(cut, index)
    return answer[:cut].strip()


def stop_token_ids(tokenizer, stop_strings: tuple[str, ...]) -> list[int]:
    """EOS plus any stop string that is a single token (Dolly's tokenizer has `### End` as one)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    vocab = tokenizer.get_vocab()
    ids += [vocab[s] for s in stop_strings if s in vocab]
    return sorted(set(ids))


def pick(spec, tokenizer) -> str:
    """The registry's format, or for `auto` the one the tokenizer shows: Dolly's, a chat template, or plain."""
    if spec.prompt_format != "auto":
        return spec.prompt_format
    if "### End" in tokenizer.get_vocab() or "dolly" in spec.name.lower():
        return "dolly"
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
