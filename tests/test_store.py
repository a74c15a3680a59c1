import pytest

from sizebench.records import FailureRecord, StageRecord
from sizebench.store import RunStore, completed


def test_truncated_last_line_is_ignored_with_a_warning_and_appends_continue(tmp_path):
    store = RunStore.create(tmp_path, {"plan": {"models": []}})
    store.append(StageRecord("m", "a1", "prompts", 1.0, 10.0, None))
    with store.records_path.open("a") as handle:
        handle.write('{"kind": "prompt", "model": "m", "att')  # a kill -9 mid-write
    with pytest.warns(UserWarning, match="truncated or damaged record on line 2"):
        assert len(store.records()) == 1
    store.append(FailureRecord("m2", "a2", "load", "boom"))
    with pytest.warns(UserWarning):
        rows = store.records()
    assert [r["kind"] for r in rows] == ["stage", "failed"]
    assert completed(rows) == {("m", "prompts")}


def test_unwritable_results_folder_is_a_clear_error(tmp_path):
    from sizebench.errors import SizebenchError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SizebenchError, match="cannot be written"):
        RunStore.create(blocker, {})


def test_open_unknown_run(tmp_path):
    from sizebench.errors import SizebenchError

    with pytest.raises(SizebenchError, match="run 'nope' does not exist"):
        RunStore.open(tmp_path, "nope")
