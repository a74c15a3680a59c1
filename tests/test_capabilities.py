"""Engines' optional capabilities (sizebench.engines.base: NextTokens, Batching, Served), declared by the session
classes that have them and checked by the stages with isinstance: a session class that has a capability's methods
without declaring it would be skipped by the stage silently, one that declares it must implement all of it, and a
stage run on a session without it skips or refuses as it did when the methods were optional on Session."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from fake_engine import make_model
from sizebench import engines
from sizebench.engines.base import Batching, NextTokens, Served, Session
from sizebench.errors import SizebenchError
from sizebench.planning.job import LoadSettings
from sizebench.planning.registry import resolve
from sizebench.specs.settings import ServeSettings
from sizebench.runstore.records import AgreementSkipRecord
from sizebench.stages import agreement_stage as agreement, sweep

CAPABILITIES = (NextTokens, Batching, Served)
OPTIONAL_BACKENDS = {"llama_cpp", "vllm"}  # a server script importing its backend at the top (serve_llamacpp)
# what each engine's session class offers the stages: a capability added or lost is a change to say here
DECLARED = {
    "Loaded": {NextTokens, Batching},
    "LlamaCppSession": {NextTokens},
    "EndpointSession": {Served},
    "FakeSession": {NextTokens},
}
JOB = LoadSettings(device="cpu", threads=1)


def session_classes() -> list[type]:
    """Every Session subclass defined in a package under sizebench.engines (an engine's, or the served engines'
    shared serving/) or in a registered engine's package (the fake engine's included)."""
    packages = {module.rpartition(".")[0] for module in engines.registered().values()}
    packages |= {info.name for info in pkgutil.iter_modules(engines.__path__, engines.__name__ + ".") if info.ispkg}
    for package in sorted(packages):
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except ModuleNotFoundError as missing:
                if missing.name not in OPTIONAL_BACKENDS:
                    raise
    found, todo = [], list(Session.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.rpartition(".")[0] in packages:
            found.append(cls)
    return found


def test_each_session_class_declares_the_capabilities_it_has_and_implements_them_whole():
    classes = session_classes()
    assert {c.__name__ for c in classes} == set(DECLARED)
    for cls in classes:
        assert not inspect.isabstract(cls), f"{cls.__name__} leaves {sorted(cls.__abstractmethods__)} unimplemented"
        for capability in CAPABILITIES:
            if issubclass(cls, capability):
                continue
            has = sorted(m for m in capability.__abstractmethods__ if callable(getattr(cls, m, None)))
            assert not has, (
                f"{cls.__name__} has {has} of {capability.__name__} without declaring it: "
                "the stage checking it would skip this engine"
            )
        assert {c for c in CAPABILITIES if issubclass(cls, c)} == DECLARED[cls.__name__], cls.__name__


def fake_session(folder):
    (spec,) = resolve(f"fake:{make_model(folder)}")
    return engines.get(spec.engine).load(spec, JOB)


def test_the_sweep_refuses_in_one_line_a_session_that_is_not_served(tmp_path):
    session, kept = fake_session(tmp_path / "m"), []
    with pytest.raises(SizebenchError) as refused:
        sweep.run_sweep(session, ServeSettings(concurrency=(1,)), None, "a1", kept.append, lambda text: None)
    assert str(refused.value) == (
        "the load sweep drives a server: fake:m is not served (FakeSession has no Served capability)"
    )
    assert kept == []


class Bare(Session):
    """The fake session's required methods only: no capability at all."""

    def __init__(self, inner):
        self.inner, self.spec, self.device, self.prompt_format = inner, inner.spec, inner.device, inner.prompt_format

    def load_record(self, attempt):
        return self.inner.load_record(attempt)

    def render(self, prompt):
        return self.inner.render(prompt)

    def prompt_tokens(self, rendered):
        return self.inner.prompt_tokens(rendered)

    def context_window(self):
        return self.inner.context_window()

    def generate(self, rendered, settings, max_new_tokens=None, meter=None):
        return self.inner.generate(rendered, settings, max_new_tokens, meter)

    def lm(self, batch_size):
        return self.inner.lm(batch_size)


def test_agreement_skips_a_session_without_next_tokens_with_the_reason_as_before(tmp_path):
    big, small = fake_session(tmp_path / "big"), Bare(fake_session(tmp_path / "small"))
    assert not isinstance(small, NextTokens)
    kept = []
    as_reference = {"reference": "fake:small", "file": "agreement/fake-small.npz"}
    agreement.run(small, as_reference, tmp_path, [], kept.append, "a1")
    plan = {"reference": "fake:big", "file": "agreement/fake-big.npz"}
    agreement.run(big, plan, tmp_path, [], kept.append, "a1")
    agreement.run(small, plan, tmp_path, [], kept.append, "a1")
    skips = [r for r in kept if isinstance(r, AgreementSkipRecord)]
    assert [r.reason for r in skips] == [
        "the reference's engine gives no next-token distributions: no agreement figures in this run",
        "not compared with fake:big: its engine gives no next-token distributions",
    ]
    assert not (tmp_path / "agreement" / "fake-small.npz").exists()
