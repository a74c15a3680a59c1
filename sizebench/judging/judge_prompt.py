"""The LLM judge's prompt, and how its choice is read: from the log-likelihoods of the replies.

The judge is not asked to generate. Its prompt (rendered in the judge's own format: chat template, or
the base models' question/answer frame) ends where the reply begins; the choice is the one of "A",
"B" and "tie" whose continuation has the highest log-likelihood (summed over its tokens). All three
log-likelihoods are stored as the judge's raw output.
"""

from __future__ import annotations

REPLIES = {"A": "A", "B": "B", "tie": "tie"}

TEMPLATE = (
    "You are judging two answers to the same request. Decide which answer is more helpful, correct "
    "and clear. Do not prefer an answer for its position or its length.\n\n"
    "Request:\n{prompt}\n{passage}\n"
    "Answer A:\n{a}\n\n"
    "Answer B:\n{b}\n\n"
    "Which answer is better? Reply with exactly one of: A, B, tie."
)


def text(prompt: str, context: str | None, a: str, b: str) -> str:
    passage = f"\nPassage:\n{context}\n" if context else ""
    return TEMPLATE.format(prompt=prompt, passage=passage, a=a.strip() or "(empty)", b=b.strip() or "(empty)")


def continuations(rendered_text: str) -> dict[str, str]:
    """The replies as continuations of the rendered prompt: after a space where the frame ends without one."""
    space = "" if not rendered_text or rendered_text[-1].isspace() else " "
    return {choice: space + reply for choice, reply in REPLIES.items()}


def choose(lls: dict[str, float]) -> str:
    """The reply with the highest log-likelihood; a tie in the numbers goes to "tie", then A."""
    return max(lls, key=lambda c: (lls[c], c == "tie", c == "A"))
