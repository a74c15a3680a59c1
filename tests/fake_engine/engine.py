"""The fake engine: sizebench.engines.base's Engine and Session over a fake model folder (fake_engine.model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fake_engine.model import BYTES_PER_PARAM, VOCABULARY, Behaviour, Clock, answer_to, fail, ids_of, words
from sizebench.engines import formats
from sizebench.engines.base import Engine, Generation, NextTokens, Session, ray_request
from sizebench.errors import SizebenchError
from sizebench.measurement import measure
from sizebench.specs.models import LOCAL_DIR, ModelSpec
from sizebench.runstore.records import LoadRecord

DTYPE = "bfloat16"
DEVICE = "fake"  # no real device: the worker measures no bandwidth and no CUDA memory for it


@dataclass
class FakeSession(Session, NextTokens):
    spec: ModelSpec
    behaviour: Behaviour
    clock: Clock
    load_s: float
    device: str = DEVICE
    prompt_format: str = "plain"
    generations: int = field(default=0)

    def load_record(self, attempt: str) -> LoadRecord:
        weights_mb = self.behaviour.params * BYTES_PER_PARAM / 2**20
        return LoadRecord(
            model=self.spec.name,
            attempt=attempt,
            family="fake",
            source=self.spec.source,
            params=self.behaviour.params,
            weights_mb=weights_mb,
            weights_mem_mb=weights_mb,
            quantization=None,
            convert_s=None,
            load_s=self.load_s,
            load_kind="cached",
            dtype=DTYPE,
            device=self.device,
            n_devices=1,
            threads=1,
            prompt_format=self.prompt_format,
            peak_rss_mb=measure.peak_rss_mb(),
            cuda_peak_mb=None,
            bytes_per_param=BYTES_PER_PARAM,
            engine=self.spec.engine,
        )

    def render(self, prompt) -> formats.Rendered:
        return formats.render(self.prompt_format, prompt.text, prompt.context, None)

    def prompt_tokens(self, rendered: formats.Rendered) -> int:
        return len(words(rendered.text)) + (1 if rendered.add_special_tokens else 0)

    def context_window(self) -> int | None:
        return self.behaviour.context

    def generate(self, rendered, settings, max_new_tokens=None, meter=None) -> Generation:
        """The canned answer's words, at most the limit; the clock advances by the prompt's prefill, then a
        token at a time, so TTFT = prefill + one token and decode tok/s = 1 / token_s on every machine."""
        fail(self.behaviour, "generate", self.generations)
        self.generations += 1
        limit = max_new_tokens or settings.max_new_tokens
        answer = words(answer_to(self.behaviour, rendered.text))[:limit]
        prompt_tokens = self.prompt_tokens(rendered)
        started = self.clock.now
        first = self.clock.advance(prompt_tokens * self.behaviour.prefill_s + self.behaviour.token_s) - started
        latency = self.clock.advance(self.behaviour.token_s * (len(answer) - 1)) - started
        return Generation(" ".join(answer), tuple(ids_of(" ".join(answer))), prompt_tokens, first, latency)

    # ---- next-token distributions (the agreement stage) ---------------------------------------------

    def vocabulary(self) -> list[str]:
        return list(VOCABULARY)

    def text_ids(self, text: str) -> list[int]:
        return ids_of(text)

    def begin_ids(self) -> list[int]:
        return [0]

    def prompt_ids(self, rendered: formats.Rendered) -> list[int]:
        return ([0] if rendered.add_special_tokens else []) + ids_of(rendered.text)

    def next_token_logits(self, ids: list[int], first: int) -> np.ndarray:
        """Per position, logits every fake model shares (seeded by the token and its position) plus this model's
        own noise (seeded by its parameter count too): models of one ladder agree closely, never exactly."""
        rows = []
        for position in range(first, len(ids) - 1):
            shared = np.random.default_rng([ids[position], position]).standard_normal(len(VOCABULARY))
            own = np.random.default_rng([ids[position], position, self.behaviour.params]).standard_normal(
                len(VOCABULARY)
            )
            rows.append(3 * shared + self.behaviour.logit_noise * own)
        return np.asarray(rows, dtype=np.float32).reshape(-1, len(VOCABULARY))

    def lm(self, batch_size: str):
        from fake_engine.lm import FakeLM

        return FakeLM(self.behaviour, self.clock), "1"


class FakeEngine(Engine):
    name = "fake"

    def types(self) -> dict[str, str]:
        return {}

    def check(self, spec, device: str) -> None:
        if spec.source != LOCAL_DIR or "fake" not in (Path(spec.location) / "config.json").read_text():
            raise SizebenchError(f"{spec.name}: the fake engine runs fake model folders only (fake_engine.make_model)")

    def resources(self, spec, device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        return ray_request(0, device, cluster_gpus, gpu_bytes)

    def load(self, spec, job: dict) -> FakeSession:
        behaviour = Behaviour.of(Path(spec.location))
        clock = Clock()
        fail(behaviour, "load")
        load_s = clock.advance(behaviour.load_s)
        return FakeSession(spec, behaviour, clock, load_s, prompt_format=behaviour.prompt_format)


ENGINE = FakeEngine()
