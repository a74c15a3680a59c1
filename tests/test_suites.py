import json

import pytest

from sizebench.errors import SizebenchError
from sizebench.suites import is_correct, load_suite


def test_txt_comments_blank_lines_and_variants(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# header\n\nWhat is the highest mountain in Japan? => Mount Fuji|Fuji\nSay hi.\n")
    suite = load_suite(path)
    assert [p.text for p in suite.prompts] == ["What is the highest mountain in Japan?", "Say hi."]
    assert suite.prompts[0].expected == ("Mount Fuji", "Fuji") and suite.prompts[1].expected == ()
    assert suite.prompts[0].id == "s-001"


def test_crlf_and_bom(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes("\ufeffWhat is the capital of France? => Paris\r\n# c\r\nQ2 => A\r\n".encode("utf-8"))
    prompts = load_suite(path).prompts
    assert prompts[0].text == "What is the capital of France?" and prompts[0].expected == ("Paris",)
    assert prompts[1].expected == ("A",)


def test_jsonl_with_context_and_multiline_prompt(tmp_path):
    path = tmp_path / "s.jsonl"
    rows = [{"id": "a", "prompt": "Line one\nline two", "expected": ["x"]},
            {"prompt": "Summarise", "context": "Some text.", "expected": "y"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts = load_suite(path).prompts
    assert prompts[0].text == "Line one\nline two" and prompts[0].id == "a"
    assert prompts[1].context == "Some text." and prompts[1].expected == ("y",)


@pytest.mark.parametrize("content, message", [
    (b"", "has no prompts"),
    (b"# only a comment\n\n", "has no prompts"),
    (b"ok line\n\xff\xfe bad\n", "line 2 is not UTF-8"),
    (b"\x00\x01\x02binary", "is binary"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(SizebenchError, match=message):
        load_suite(path)


def test_missing_file_and_bad_jsonl(tmp_path):
    with pytest.raises(SizebenchError, match="does not exist"):
        load_suite(tmp_path / "nope.txt")
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    with pytest.raises(SizebenchError, match="line 2: not valid JSON"):
        load_suite(bad)


def test_matching_is_case_accent_and_word_insensitive():
    assert is_correct("It is MOUNT FUJI, of course", ("Mount Fuji", "Fuji"))
    assert is_correct("La capitale est Bogotá", ("Bogota",))
    assert is_correct("The answer is 56.", ("56",))
    assert not is_correct("The answer is 156.", ("56",))
    assert is_correct("anything", ()) is None


def test_shipped_suites_parse():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    geography = load_suite(repo / "prompts" / "geography.txt")
    assert len(geography.prompts) >= 25
    texts = {p.text for p in geography.prompts}
    assert {"What is the highest mountain in Japan?", "What is the highest mountain in the world?",
            "What is the capital of France?"} <= texts
    assert load_suite(repo / "prompts" / "general.txt").prompts
    assert load_suite(repo / "prompts" / "instructions.jsonl").prompts
