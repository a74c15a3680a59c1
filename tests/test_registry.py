import pytest

from sizebench.errors import SizebenchError
from sizebench.registry import BUILTINS, GGUF_FILE, HUB, LOCAL_DIR, resolve


def test_groups_and_names():
    assert [s.name for s in resolve("offline")] == ["smollm2-135m", "gemma3-270m"]
    assert [s.name for s in resolve("all")] == ["minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b"]
    assert [s.name for s in resolve("dolly-v2-3b, smollm2-135m,dolly-v2-3b")] == ["dolly-v2-3b", "smollm2-135m"]
    assert len(BUILTINS) == 6


def test_published_parameter_counts():
    counts = {s.name: s.params for s in resolve("all")}
    assert counts == {"minidolly-70m": 18_915_328, "dolly-v2-3b": 2_517_652_480,
                      "dolly-v2-7b": 6_444_163_072, "dolly-v2-12b": 11_327_027_200}


def test_hub_id_folder_and_gguf_path(tmp_path):
    assert resolve("EleutherAI/pythia-70m")[0].source == HUB
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve(str(folder))[0].source == LOCAL_DIR
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
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
