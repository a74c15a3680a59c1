"""lm-eval's model interface on a fake model: the canned answer scores best, every other choice by its length."""

from __future__ import annotations

from lm_eval.api.model import LM

from fake_engine.model import Behaviour, Clock, answer_to, words


class FakeLM(LM):
    """Silent, as lm-eval's models are while they score: each request advances the clock by score_s."""

    def __init__(self, behaviour: Behaviour, clock: Clock):
        super().__init__()
        self.behaviour, self.clock = behaviour, clock

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        scores = []
        for request in requests:
            self.clock.advance(self.behaviour.score_s)
            context, continuation = request.args
            right = continuation.strip() == answer_to(self.behaviour, context)
            scores.append((-1.0 if right else -2.0 - len(words(continuation)), right))
        return scores

    def loglikelihood_rolling(self, requests) -> list[float]:
        return [-float(len(words(request.args[0]))) for request in requests]

    def generate_until(self, requests) -> list[str]:
        return [answer_to(self.behaviour, request.args[0]) for request in requests]
