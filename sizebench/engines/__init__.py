"""Engines, one folder each, registered here by name: the one line adding an engine touches outside its folder.

Each entry names the module whose `ENGINE` implements `sizebench.engines.base.Engine`; it is imported
on first use, and importing it is cheap (the engine's library loads with the model).

An engine kept outside this package (the tests' fake engine, tests/fake_engine) registers through the
environment: EXTRA_ENGINES_VARIABLE holds `NAME=MODULE` pairs separated by commas. Worker processes
inherit the environment, so they find it as the parent did.
"""

from __future__ import annotations

import importlib
import os

from sizebench.errors import SizebenchError

ENGINES = {
    "transformers": "sizebench.engines.hf.engine",
    "llama.cpp": "sizebench.engines.llamacpp.engine",
    "openai": "sizebench.engines.openai.engine",  # an endpoint given as openai:URL#NAME
    "llama.cpp-server": "sizebench.engines.llamacpp_server.engine",  # llama-cpp-python's server, launched per rung
    "vllm": "sizebench.engines.vllm.engine",  # `vllm serve`, launched per rung (needs a GPU)
}
EXTRA_ENGINES_VARIABLE = "SIZEBENCH_EXTRA_ENGINES"


def registered() -> dict[str, str]:
    """ENGINES and those the environment adds, name -> module."""
    extra = {}
    for pair in os.environ.get(EXTRA_ENGINES_VARIABLE, "").split(","):
        name, equals, module = (part.strip() for part in pair.partition("="))
        if not pair.strip():
            continue
        if not (equals and name and module) or name in ENGINES:
            raise SizebenchError(f"{EXTRA_ENGINES_VARIABLE}: '{pair.strip()}' is not NAME=MODULE with a new NAME")
        extra[name] = module
    return {**ENGINES, **extra}


def names() -> tuple[str, ...]:
    return tuple(registered())


def get(name: str):
    modules = registered()
    if name not in modules:
        raise SizebenchError(f"unknown engine '{name}'; choose one of: {', '.join(modules)}")
    return importlib.import_module(modules[name]).ENGINE
