"""Engines, one folder each, registered here by name: the one line adding an engine touches outside its folder.

Each entry names the module whose `ENGINE` implements `sizebench.engines.base.Engine`; it is imported
on first use, and importing it is cheap (the engine's library loads with the model).
"""

from __future__ import annotations

import importlib

from sizebench.errors import SizebenchError

ENGINES = {
    "transformers": "sizebench.engines.hf.engine",
    "llama.cpp": "sizebench.engines.llamacpp.engine",
    "openai": "sizebench.engines.openai.engine",  # an endpoint given as openai:URL#NAME
    "llama.cpp-server": "sizebench.engines.openai.llamacpp_server",  # llama-cpp-python's server, launched per rung
    "vllm": "sizebench.engines.openai.vllm_server",  # `vllm serve`, launched per rung (needs a GPU)
}
DEFAULT = "transformers"


def names() -> tuple[str, ...]:
    return tuple(ENGINES)


def get(name: str):
    if name not in ENGINES:
        raise SizebenchError(f"unknown engine '{name}'; choose one of: {', '.join(ENGINES)}")
    return importlib.import_module(ENGINES[name]).ENGINE
