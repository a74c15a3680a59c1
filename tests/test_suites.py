import json

import pytest

from sizebench.errors import SizebenchError
from sizebench.stages.suites import is_correct, load_suite


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
    rows = [
        {"id": "a", "prompt": "Line one\nline two", "expected": ["x"]},
        {"prompt": "Summarise", "context": "Some text.", "expected": "y"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    prompts = load_suite(path).prompts
    assert prompts[0].text == "Line one\nline two" and prompts[0].id == "a"
    assert prompts[1].context == "Some text." and prompts[1].expected == ("y",)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "has no prompts"),
        (b"# only a comment\n\n", "has no prompts"),
        (b"ok line\n\xff\xfe bad\n", "line 2 is not UTF-8"),
        (b"\x00\x01\x02binary", "is binary"),
    ],
)
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
    assert {
        "What is the highest mountain in Japan?",
        "What is the highest mountain in the world?",
        "What is the capital of France?",
    } <= texts
    assert load_suite(repo / "prompts" / "general.txt").prompts
    assert load_suite(repo / "prompts" / "instructions.jsonl").prompts


STRICT = [
    ("s.txt", "Q1? => A\n => Paris\n", "line 2: an expected answer ('Paris') with no prompt before ' => '"),
    ("s.txt", "# c\n=> Paris|Lutetia\n", "line 2: an expected answer ('Paris|Lutetia') with no prompt"),
    ("s.txt", "Q1? =>\n", "line 1: nothing after ' => '"),
    ("s.txt", "Q1? => A\n\n# again\nQ1? => B\n", "line 4: the same prompt as line 1"),
    (
        "s.jsonl",
        '{"prompt": "Q1?"}\n{"prompt": "", "expected": ["Paris"]}\n',
        'line 2: an expected answer with no "prompt"',
    ),
    ("s.jsonl", '{"expected": "Paris"}\n', 'line 1: an expected answer with no "prompt"'),
    ("s.jsonl", '{"prompt": "   "}\n', 'line 1: needs a non-empty "prompt" string'),
    (
        "s.jsonl",
        '{"id": "a", "prompt": "Q1?"}\n\n{"id": "a", "prompt": "Q2?"}\n',
        "line 3: id 'a' is already used on line 1",
    ),
    (
        "s.jsonl",
        '{"prompt": "Q1?"}\n{"id": "s-001", "prompt": "Q2?"}\n',
        "line 2: id 's-001' is already used on line 1",
    ),
    (
        "s.jsonl",
        '{"prompt": "Q1?", "context": "x"}\n{"prompt": "Q1?", "context": "x"}\n',
        "line 2: the same prompt as line 1",
    ),
]


@pytest.mark.parametrize("name, content, message", STRICT, ids=[f"{n}: {m}" for n, _, m in STRICT])
def test_lines_a_suite_cannot_use_are_errors_naming_file_and_line(tmp_path, name, content, message):
    import re

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SizebenchError, match=re.escape(f"prompts file '{path}' {message}")):
        load_suite(path)


def test_same_prompt_with_another_context_and_arrows_inside_a_prompt_are_fine(tmp_path):
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"prompt": "Summarise", "context": "one"}\n{"prompt": "Summarise", "context": "two"}\n')
    assert len(load_suite(jsonl).prompts) == 2
    txt = tmp_path / "s.txt"
    txt.write_text("What does x=>y mean in JavaScript? => arrow function|arrow\n")
    assert load_suite(txt).prompts[0].text == "What does x=>y mean in JavaScript?"
