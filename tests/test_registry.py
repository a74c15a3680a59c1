import re

import pytest

from conftest import tiny_gguf
from sizebench.errors import SizebenchError
from sizebench.planning.registry import BUILTINS, builtin, file_key, resolve
from sizebench.specs.models import GGUF_FILE, HUB, LOCAL_DIR, known_config


def test_groups_and_names():
    assert [s.name for s in resolve("offline")] == ["smollm2-135m", "gemma3-270m"]
    assert [s.name for s in resolve("dolly")] == ["minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b"]
    # `all` is every built-in model, so a run of it offline still has real rows
    assert [s.name for s in resolve("all")] == [s.name for s in resolve("dolly")] + [s.name for s in resolve("offline")]
    assert [s.name for s in resolve("dolly-v2-3b, smollm2-135m,dolly-v2-3b")] == ["dolly-v2-3b", "smollm2-135m"]
    assert len(BUILTINS) == 6


@pytest.mark.parametrize("name", ["minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b"])
def test_registry_counts_are_the_architectures_totals(name):
    """The registry's GPT-NeoX config instantiated on the meta device (no memory): total and non-embedding counts."""
    pytest.importorskip("torch")
    from sizebench.engines.hf.loader import count_params
    from sizebench.engines.hf.placement import meta_model

    spec = builtin(name)
    config = known_config(spec)
    total, non_embedding = count_params(meta_model(config, "float32"))
    assert (spec.params, spec.params_non_embedding) == (total, non_embedding)
    assert total - non_embedding == 2 * config["vocab_size"] * config["hidden_size"]  # untied input and output


def test_the_dolly_shapes_are_pythias_with_dollys_vocabulary():
    """(hidden, layers, heads, vocabulary): Pythia 70m/2.8b/6.9b/12b (EleutherAI/pythia README's table and
    models/*.yml); Dolly v2's 50,280-token vocabulary, miniDolly pythia-70m's 50,304."""
    shapes = {
        name: tuple(
            known_config(builtin(name))[k]
            for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
        )
        for name in ("minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b")
    }
    assert shapes == {
        "minidolly-70m": (512, 6, 8, 50_304),
        "dolly-v2-3b": (2560, 32, 32, 50_280),
        "dolly-v2-7b": (4096, 32, 32, 50_280),
        "dolly-v2-12b": (5120, 36, 40, 50_280),
    }
    assert known_config(builtin("smollm2-135m")) is None


def test_non_embedding_count_subtracts_a_tied_output_once():
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from sizebench.engines.hf.loader import count_params

    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    total, non_embedding = count_params(model)
    assert total - non_embedding == 1000 * 64


def test_file_keys_are_safe_and_unique():
    names = [
        "EleutherAI/pythia-70m",
        "EleutherAI_pythia-70m",
        "a/model",
        "b/model",
        "model",
        "x@int4",
        "../up",
        "we ird:name*?",
        "smollm2-135m",
    ]
    keys = [file_key(n) for n in names]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", k) and not k.startswith(".") for k in keys)
    assert file_key("smollm2-135m") == "smollm2-135m"


def test_same_named_folders_stay_two_models(tmp_path):
    for parent in ("a", "b"):
        (tmp_path / parent / "model").mkdir(parents=True)
        (tmp_path / parent / "model" / "config.json").write_text("{}")
    specs = resolve(f"{tmp_path / 'a' / 'model'},{tmp_path / 'b' / 'model'},{tmp_path / 'a' / 'model'}")
    assert [s.name for s in specs] == ["a/model", "b/model"]
    assert len({s.location for s in specs}) == 2


def test_hub_id_folder_and_gguf_path(tmp_path):
    assert resolve("EleutherAI/pythia-70m")[0].source == HUB
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve(str(folder))[0].source == LOCAL_DIR
    gguf = tiny_gguf(tmp_path / "x.gguf")
    assert resolve(str(gguf))[0].source == GGUF_FILE


def test_unknown_name_suggests():
    with pytest.raises(SizebenchError, match="did you mean 'dolly-v2-3b'"):
        resolve("dolly-v2-3")


@pytest.mark.parametrize("bad", ["./missing-folder", "/nope/model.gguf", ""])
def test_bad_paths(bad):
    with pytest.raises(SizebenchError):
        resolve(bad)


def test_folder_without_config(tmp_path):
    with pytest.raises(SizebenchError, match="no config.json"):
        resolve(str(tmp_path))
