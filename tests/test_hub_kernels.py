"""No load asks transformers for Hub kernels (binary code it fetches from the Hub: offline the load fails, online
the figures depend on what the Hub served that day) unless the user says --hub-kernels."""

import pytest

from sizebench import engines
from sizebench.planning.registry import resolve


@pytest.fixture
def kernelize(monkeypatch):
    """transformers' kernelize replaced: it records its calls, and raises when told to."""
    import transformers.modeling_utils

    calls: list[str] = []
    state = {"raise": True}

    def fake(model, **kwargs):
        calls.append(type(model).__name__)
        if state["raise"]:
            raise RuntimeError("kernelize called: it would fetch kernels-community/... from the Hub")
        return model

    monkeypatch.setattr(transformers.modeling_utils, "kernelize", fake)
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)  # transformers' own default: kernels on
    return calls, state


@pytest.mark.parametrize("suffix", ["", "@bf16", "@int8"])
def test_every_transformers_load_works_with_kernelize_broken(kernelize, tiny_model, suffix):
    """The load settings of every job (a rung's, an agreement reference's, the judge's): Hub kernels off unless
    asked for."""
    from sizebench.specs.settings import LoadSettings

    calls, _ = kernelize
    spec = resolve(f"{tiny_model}{suffix}")[0]
    loaded = engines.get("transformers").load(spec, LoadSettings(device="cpu"))
    assert loaded.load_record("a").hub_kernels is False
    assert calls == []


def test_hub_kernels_asked_for_are_applied(kernelize, tiny_model):
    from sizebench.engines.hf import loader

    calls, state = kernelize
    state["raise"] = False
    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", hub_kernels=True)
    assert calls and calls[0] == "GPTNeoXForCausalLM"
    assert loaded.load_record("a").hub_kernels is True


@pytest.mark.slow  # dequantizes smollm2's GGUF (about 10 s)
def test_gguf_conversion_works_with_kernelize_broken(kernelize, tmp_path):
    from sizebench.planning.registry import builtin
    from sizebench.weights import sources
    from sizebench.weights.gguf_convert import convert_gguf

    calls, _ = kernelize
    convert_gguf(sources.package_gguf(builtin("smollm2-135m")), tmp_path / "converted")
    assert (tmp_path / "converted" / "config.json").exists() and calls == []
