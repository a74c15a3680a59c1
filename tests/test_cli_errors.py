"""Every bad input: exit status 2, one line on stderr, no traceback. The cases run the CLI's entry point
in process; two run it as a user does, in a child process, to check the same end to end."""

from pathlib import Path

import pytest

from conftest import sizebench, tiny_llama_gguf


def bad_prompt_files(tmp):
    (tmp / "empty.txt").write_text("")
    (tmp / "binary.txt").write_bytes(b"\x00\x01\x02")
    (tmp / "latin1.txt").write_bytes("Qu'est-ce que c'est? => caf\xe9".encode("latin-1"))
    (tmp / "notes.yaml").mkdir()
    (tmp / "good.txt").write_text("What is the capital of France? => Paris\n")
    (tmp / "no-prompt.txt").write_text("What is the capital of France? => Paris\n => Rome\n")
    (tmp / "twice.jsonl").write_text('{"id": "q", "prompt": "A?"}\n{"id": "q", "prompt": "B?"}\n')
    (tmp / "bad-yaml").mkdir()
    (tmp / "bad-yaml" / "mine.yaml").write_text("task: mine\ndataset_path: json\n  metric_list: [\n")


CASES = [
    (["compare", "--models", "dolly-v2-3"], "did you mean 'dolly-v2-3b'"),
    (["eval", "--tasks", "no_such_task"], "unknown task 'no_such_task'"),
    (["compare", "--prompts", "missing.txt"], "does not exist"),
    (["compare", "--prompts", "empty.txt"], "has no prompts"),
    (["compare", "--prompts", "binary.txt"], "is binary"),
    (["compare", "--prompts", "latin1.txt"], "line 1 is not UTF-8"),
    (["eval", "--task-path", "missing-dir"], "does not exist or is not a folder"),
    (["eval", "--task-path", "notes.yaml"], "has no .yaml task files"),
    (
        ["eval", "--task-path", "bad-yaml", "--tasks", "mine"],
        "unknown task 'mine'; task file 'bad-yaml/mine.yaml' is not valid YAML (mapping values are not allowed here"
        " line 3)",
    ),
    (["compare", "--dtype", "float8"], "invalid --dtype 'float8'"),
    (["compare", "--engines", "openai"], "--engines cannot take openai: give the endpoint as a model"),
    (["compare", "--weights", "random", "-m", "smollm2-135m"], "--weights random builds a transformers model"),
    (["eval", "--baseline", "nope", "-m", "smollm2-135m"], "--baseline nope: not one of --models (smollm2-135m)"),
    (["compare", "--device", "tpu"], "invalid --device 'tpu'"),
    (["eval", "--limit", "0"], "--limit must be a positive number"),
    (["eval", "--limit", "-3"], "--limit must be a positive number"),
    (["compare", "--repeat", "0"], "--repeat must be a positive integer"),
    (["compare", "--max-new-tokens", "-1"], "--max-new-tokens must be a positive integer"),
    (["compare", "--prompts", "good.txt", "--results", "blocker/sub"], "cannot be written"),
    (["bench", "--resume", "20990101-000000"], "run '20990101-000000' does not exist"),
    (["report", "nope"], "run 'nope' does not exist"),
    (["compare", "--max-new-tokens", "many"], "Invalid value for '--max-new-tokens'"),
    (["compare", "--prompts", "no-prompt.txt"], "'no-prompt.txt' line 2: an expected answer ('Rome') with no prompt"),
    (["compare", "--prompts", "twice.jsonl"], "'twice.jsonl' line 2: id 'q' is already used on line 1"),
    (["compare", "--prompts", "good.txt", "--timeout", "0"], "--timeout must be a positive number of seconds"),
    (["bench", "--margin", "2"], "--margin must be between 0 and 1"),
    (["eval", "--margin", "0"], "--margin must be between 0 and 1"),
    (["compare", "--margin", "1"], "--margin must be between 0 and 1"),
    (["eval", "--report", "sub/e.md"], "--report takes a file name ending in .md"),
    (
        ["bench", "--resume", "20990101-000000", "--prompts", "good.txt", "--sample"],
        "--prompts, --sample cannot change them (with --resume: --margin, --baseline, --executor, --ray-address, "
        "--timeout, --results, --report)",
    ),
]


LONG = {"eval --tasks no_such_task", "eval --task-path bad-yaml --tasks mine"}  # lm-eval indexes its every task


@pytest.mark.parametrize(
    "args, message",
    [pytest.param(a, m, id=" ".join(a), marks=[pytest.mark.long] if " ".join(a) in LONG else []) for a, m in CASES],
)
def test_bad_input(tmp_path, cli, args, message):
    bad_prompt_files(tmp_path)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, stdout, stderr = cli(*args)
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and message in lines[0], stderr
    assert "Traceback" not in stderr + stdout


def test_a_bad_input_as_a_user_runs_it():
    done = sizebench("compare", "--models", "dolly-v2-3")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: unknown model 'dolly-v2-3'; did you mean 'dolly-v2-3b'?"]
    assert "Traceback" not in done.stderr + done.stdout


def test_debug_shows_the_traceback():
    done = sizebench("--debug", "compare", "--models", "dolly-v2-3")
    assert "Traceback" in done.stderr and "SizebenchError" in done.stderr


@pytest.mark.long
def test_cuda_asked_for_without_a_gpu(tmp_path, cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    (tmp_path / "ok.txt").write_text("What is the capital of France? => Paris\n")
    code, _, stderr = cli("compare", "--device", "cuda", "--prompts", "ok.txt", "--models", "smollm2-135m")
    assert code == 2 and stderr.strip() == "error: --device cuda asked for, but torch sees no CUDA GPU here"


def test_device_auto_is_what_torch_sees_and_needs_no_torch_import_without_a_gpu_driver():
    """The CLI resolves --device auto before every run; without a GPU driver it does so without importing torch."""
    import subprocess
    import sys

    import torch

    from sizebench.measurement import measure

    assert measure.cuda_available() == torch.cuda.is_available()
    probe = (
        "import sys; from sizebench.measurement.measure import resolve_device; "
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    device, imported = done.stdout.split()
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    driver = any(Path(p).exists() for p in measure.GPU_DEVICE_FILES)
    assert imported == str(driver or sys.platform != "linux")


def truncated(path):
    data = tiny_llama_gguf(path).read_bytes()
    path.write_bytes(data[: len(data) - 100])  # the last tensor loses its end


def bad_magic(path):
    data = tiny_llama_gguf(path).read_bytes()
    path.write_bytes(b"GGML" + data[4:])


@pytest.mark.parametrize(
    "damage, message",
    [(truncated, "is truncated: its tensors need"), (bad_magic, "is not a GGUF file (it starts with b'GGML'")],
)
def test_a_corrupt_gguf_is_refused_before_any_run(tmp_path, cli, damage, message):
    damage(tmp_path / "bad.gguf")
    code, stdout, stderr = cli("eval", "--models", "bad.gguf", "--results", "r")
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and message in lines[0] and "'bad.gguf'" in lines[0], stderr
    assert "Traceback" not in stderr + stdout and not (tmp_path / "r").exists()
