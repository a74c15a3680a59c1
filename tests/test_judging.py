"""`sizebench judge`: the judging page over HTTP and in a real headless Chromium, and an LLM judge.

The run judged is made by `sizebench compare` on three tiny GPT-NeoX models: a random one and two whose
every token is an HTML payload (`<script>`, `<img onerror>`), so the page is tested on hostile answers
a real model produced.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import build_tiny_neox, emit_only, sizebench

SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
SUITE = [
    {"id": "q1", "prompt": "What is the capital of France?"},
    {"id": "q2", "prompt": "Summarise the passage.", "context": "Mount Fuji is the highest mountain in Japan."},
    {"id": "q3", "prompt": "Name a mountain in Japan. " + IMG},
    {"id": "q4", "prompt": "What is the highest mountain in Japan?"},
    {"id": "q5", "prompt": "Name a currency."},
]
SCREENS = len(SUITE)  # two rungs: one pair per prompt


def _long_window(folder: Path) -> Path:
    """Rotary positions: a longer window is a config change, and the judge's prompt needs one."""
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 2048
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _emitter(base: Path, folder: Path, payload: str) -> Path:
    """The tiny model with `payload` added to its vocabulary as one token, and emitting it every time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer.add_tokens([payload])
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emit_only(model, tokenizer.convert_tokens_to_ids(payload))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def made_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """(results folder, run id, the random tiny model): two rungs, the bigger one answering in HTML."""
    root = tmp_path_factory.mktemp("judging")
    tiny = _long_window(build_tiny_neox(root / "tiny"))
    hostile = _emitter(tiny, root / "hostile", SCRIPT + IMG)
    suite = root / "suite.jsonl"
    suite.write_text("".join(json.dumps(p) + "\n" for p in SUITE))
    results = root / "results"
    done = sizebench(
        "compare",
        "--models",
        f"{tiny},{hostile}",
        "--prompts",
        str(suite),
        "--max-new-tokens",
        "3",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    run_id = next((results / "runs").iterdir()).name
    return results, run_id, tiny


@pytest.fixture
def run_copy(made_run, tmp_path) -> tuple[Path, str, Path]:
    results, run_id, tiny = made_run
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return copy, run_id, tiny


class Page:
    """`sizebench judge RUN` in a child process, as a user starts it."""

    def __init__(self, results: Path, run_id: str, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sizebench", "judge", run_id, "--results", str(results), "--no-open", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("judging page: "), line + self.proc.stderr.read()
        self.url = line.split(": ", 1)[1].strip()
        self.base, self.token = self.url.split("/?token=")

    def request(self, path: str, body=None, token: str | None = "mine", raw: bytes | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Sizebench-Token"] = self.token if token == "mine" else token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, data, headers), timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def _votes(results: Path, run_id: str) -> list[dict]:
    lines = (results / "runs" / run_id / "records.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] in ("vote", "vote_undone") and r["model"] == "human"]


def test_page_needs_its_token_refuses_bad_input_and_second_votes(run_copy):
    results, run_id, _ = run_copy
    page = Page(results, run_id)
    try:
        assert page.request("/api/next?rater=ann", token=None)[0] == 403
        assert page.request("/api/next?rater=ann", token="guess")[0] == 403
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(page.base + "/", timeout=10)
        assert refused.value.code == 403
        status, screen = page.request("/api/next?rater=ann")
        assert status == 200 and screen["total"] == SCREENS and screen["done"] == 0
        before = _votes(results, run_id)
        for body in (
            {"screen": screen["screen"], "choice": "C", "rater": "ann"},
            {"screen": screen["screen"], "choice": "A", "rater": ""},
            {"screen": screen["screen"], "choice": "A", "rater": "ann", "comment": 5},
        ):
            assert page.request("/api/vote", body)[0] == 400
        assert page.request("/api/vote", raw=b"{not json")[0] == 400
        assert page.request("/api/vote", raw=b"[1, 2]")[0] == 400
        assert page.request("/api/nothing", {})[0] == 404
        assert _votes(results, run_id) == before  # nothing stored by a malformed request
        vote = {"screen": screen["screen"], "choice": "A", "rater": "ann", "comment": "clearer"}
        assert page.request("/api/vote", vote) == (200, {"done": 1, "total": SCREENS, "identical": 0, "can_undo": True})
        assert page.request("/api/vote", vote)[0] == 409
        assert page.request("/api/vote", {**vote, "screen": "made-up"})[0] == 409
        status, again = page.request("/api/undo", {"rater": "ann"})
        assert status == 200 and again["screen"] != screen["screen"] and again["a"] == screen["a"]
        assert page.request("/api/vote", vote)[0] == 409  # the undone screen's id stays spent
        assert page.request("/api/vote", {**vote, "screen": again["screen"], "choice": "B"})[0] == 200
    finally:
        assert page.stop() == 128 + signal.SIGTERM
    stored = _votes(results, run_id)
    assert [(r["kind"], r.get("choice")) for r in stored] == [("vote", "A"), ("vote_undone", None), ("vote", "B")]
    assert stored[0]["comment"] == "clearer" and {stored[0]["left"], stored[0]["right"]} == {
        stored[2]["left"],
        stored[2]["right"],
    }


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (make test installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def _wait(condition, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the page did not get there in time")


@pytest.mark.browser
def test_browser_votes_by_keyboard_and_mouse_resumes_after_a_restart_and_keeps_answers_inert(run_copy):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    results, run_id, _ = run_copy
    driver = _browser()
    page = Page(results, run_id)
    text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731

    def open_page(target: Page) -> None:
        driver.get(target.url)
        driver.find_element(By.ID, "rater").send_keys("bea")
        driver.find_element(By.ID, "start").click()
        _wait(lambda: driver.find_element(By.ID, "judging").is_displayed())

    def press(key: str, done: int) -> None:
        driver.execute_script("document.activeElement.blur()")
        ActionChains(driver).send_keys(key).perform()
        _wait(lambda: text("progress").startswith(f"{done} of {SCREENS}"))

    def inert() -> None:
        answers = text("answer-a") + text("answer-b")
        assert SCRIPT in answers and IMG in answers  # the hostile answer, shown verbatim as text
        assert driver.execute_script("return window.__pwned") is None
        assert driver.execute_script("return document.querySelectorAll('main script, main img').length") == 0

    try:
        open_page(page)
        assert text("progress") == f"0 of {SCREENS} judged"
        inert()
        press("1", 1)  # A better, by keyboard
        driver.find_element(By.CSS_SELECTOR, "[data-choice='B']").click()  # B better, by mouse
        _wait(lambda: text("progress").startswith(f"2 of {SCREENS}"))
        inert()
        assert page.stop() == 128 + signal.SIGTERM

        page = Page(results, run_id)  # a new server and token: judging resumes where it stopped
        open_page(page)
        assert text("progress").startswith(f"2 of {SCREENS}")
        press("2", 3)  # tie
        driver.find_element(By.ID, "undo").click()
        _wait(lambda: text("progress").startswith(f"2 of {SCREENS}"))
        driver.find_element(By.ID, "comment").send_keys("4")  # typing a comment is not a vote
        assert text("progress").startswith(f"2 of {SCREENS}")
        press("4", 3)  # both bad
        press("3", 4)
        press("3", 5)
        assert driver.find_element(By.ID, "finished").is_displayed()
        assert driver.execute_script("return window.__pwned") is None
    finally:
        driver.quit()
        if page.proc.poll() is None:
            page.stop()
    stored = _votes(results, run_id)
    assert [r.get("choice") for r in stored] == ["A", "B", "tie", None, "bad", "B", "B"]
    assert stored[3]["kind"] == "vote_undone" and stored[3]["screen"] == stored[2]["screen"]
    assert stored[4]["comment"] == "4" and {r["rater"] for r in stored} == {"bea"}
    assert stored[4]["prompt_id"] == stored[2]["prompt_id"]  # undo brought the same answers back
    counted = [r for r in stored if r["kind"] == "vote" and r["screen"] != stored[3]["screen"]]
    assert len({r["prompt_id"] for r in counted}) == SCREENS


def test_llm_judge_judges_both_orders_and_the_report_shows_its_worth(run_copy):
    results, run_id, tiny = run_copy
    page = Page(results, run_id)
    try:
        for _ in range(3):
            screen = page.request("/api/next?rater=cy")[1]
            assert page.request("/api/vote", {"screen": screen["screen"], "choice": "A", "rater": "cy"})[0] == 200
    finally:
        page.stop()
    done = sizebench("judge", run_id, "--results", str(results), "--judge", str(tiny))
    assert done.returncode == 0, done.stderr
    assert "itself one of the run's rungs" in done.stderr
    records = [json.loads(line) for line in (results / "runs" / run_id / "records.jsonl").read_text().splitlines()]
    judged = [r for r in records if r["kind"] == "vote" and r["model"] == "judge:tiny"]
    assert len(judged) == 2 * SCREENS and len({r["screen"] for r in judged}) == 2 * SCREENS  # both orders
    assert all(set(r["raw"]["loglikelihood"]) == {"A", "B", "tie"} for r in judged)
    assert all(r["choice"] == max(r["raw"]["loglikelihood"], key=r["raw"]["loglikelihood"].get) for r in judged)
    again = sizebench("judge", run_id, "--results", str(results), "--judge", str(tiny))  # resumes: nothing to redo
    assert again.returncode == 0 and f"{2 * SCREENS} judgements" in again.stdout
    shown = sizebench("report", run_id, "--results", str(results))
    assert shown.returncode == 0, shown.stderr
    report = (results / "report.md").read_text()
    section = report.split("## Preference", 1)[1].split("\n## ", 1)[0]
    assert "**Human votes** (3 prompts and pairs judged; 1 rater)" in section
    assert "**LLM judge tiny** (itself one of the rungs)" in section and "position consistency" in section
    assert "Agreement with the human votes" in section
    assert "### Preference: tiny -> hostile" in report
    assert SCRIPT not in report and "&lt;script&gt;" in report  # answers in the report are escaped too


def test_judge_refuses_bad_input_in_one_line(run_copy):
    results, run_id, _ = run_copy
    for args, words in (
        (["judge", "no-such-run", "--results", str(results)], "does not exist"),
        (["judge", run_id, "--results", str(results), "--judge", "no-such-model"], "unknown model"),
        (["judge", run_id, "--results", str(results), "--port", "70000"], "--port"),
    ):
        done = sizebench(*args)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.long
def test_a_run_recorded_before_judging_existed_is_judged_and_a_judge_that_cannot_load_fails_in_one_line(tmp_path):
    from conftest import REPO, tiny_gguf

    results = tmp_path / "results"
    shutil.copytree(REPO / "tests" / "data" / "run-before-issue-19", results / "runs" / "old")
    page = Page(results, "old")
    try:
        status, screen = page.request("/api/next?rater=dee")
        assert status == 200 and screen["prompt"] and screen["total"] > 0
    finally:
        page.stop()
    broken = tiny_gguf(tmp_path / "broken.gguf")  # a valid GGUF no model can be built from
    done = sizebench("judge", "old", "--results", str(results), "--judge", str(broken))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1 and "judge broken failed" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
