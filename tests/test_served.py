"""Served rungs: endpoint expressions, a real llama-cpp-python server on 127.0.0.1 over the offline smollm2 GGUF
(prompts, the lm-eval probe, a sizebench_geo subset with the in-process run's choices, a load sweep at
concurrency 1-4), a server killed mid-sweep, an endpoint down at the start, and vLLM's command line (not run)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from conftest import records, sizebench

REPO = Path(__file__).resolve().parents[1]
# The endpoint's scores against the same llama.cpp build in process, on --limit 10 (30 items, 120 choices). Measured
# on a 2-core EPYC: the median choice scores the same (gap 0), the largest gap 0.77 nats (lm-eval's client-side
# tokenizer for the endpoint, llama.cpp's own in process), the same choice on 30/30 items.
MEDIAN_LL_GAP = 0.001
LL_BOUND = 1.0
PARITY_BAR = 0.98


@pytest.mark.parametrize(
    "expression, words",
    [
        ("openai:http://127.0.0.1:8000/v1", "names no served model after '#'"),
        ("openai:ftp://127.0.0.1/v1#m", "is not an http(s) URL"),
        ("openai:http://127.0.0.1:80x/v1#m", "has a bad port"),
        ("openai:http://127.0.0.1:8000/v1#", "empty served model name"),
        ("openai:http://127.0.0.1:8000/v1#m?tokenizr=smollm2-135m", "unknown option 'tokenizr'"),
        ("openai:http://127.0.0.1:8000/v1#m?tokenizer=smolm2", "did you mean 'smollm2-135m'"),
        ("llama.cpp-server:smollm2-135m@q9_9", "has no type 'q9_9'"),
    ],
)
def test_malformed_endpoint_expressions_are_one_line_and_exit_2(cli, expression, words):
    code, _, err = cli("models", "--models", expression)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_sweep_options_are_checked(cli, suite_file):
    code, _, err = cli("bench", "-m", "smollm2-135m", "-p", str(suite_file), "--concurrency", "1,2")
    assert code == 2 and "smollm2-135m is not served" in err
    code, _, err = cli("bench", "-m", "llama.cpp-server:smollm2-135m", "--concurrency", "1,x")
    assert code == 2 and "--concurrency takes a comma list of integers" in err
    code, _, err = cli("bench", "-m", "llama.cpp-server:smollm2-135m", "--concurrency", "1", "--slo", "ttft=fast")
    assert code == 2 and "--slo takes METRIC=SECONDS" in err
    code, _, err = cli("compare", "--engines", "openai")
    assert code == 2 and "give the endpoint as a model" in err


def test_vllm_command_line_and_tensor_parallel_size():
    from sizebench.engines.vllm import engine as vllm_server

    gib = 2**30
    assert vllm_server.tensor_parallel(7_000_000_000, 80 * gib, 8) == 1
    assert vllm_server.tensor_parallel(70_000_000_000, 80 * gib, 8) == 4  # 168 GB of bf16 + KV over 72 GiB each
    with pytest.raises(Exception, match="need 4 GPUs"):
        vllm_server.tensor_parallel(70_000_000_000, 80 * gib, 2)
    assert vllm_server.command("meta-llama/Llama-3.1-70B-Instruct", "model", 8011, 4, "--max-model-len 8192") == [
        "vllm",
        "serve",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--host",
        "127.0.0.1",
        "--port",
        "8011",
        "--served-model-name",
        "model",
        "--tensor-parallel-size",
        "4",
        "--max-model-len",
        "8192",
    ]


@pytest.mark.slow  # a worker process: about 40 s on this shared machine
def test_endpoint_down_at_the_start_is_unavailable_with_its_url(tmp_path, suite_file):
    from sizebench.engines.serving.launch import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    done = sizebench(
        "bench",
        "-m",
        f"openai:{url}#m",
        "-p",
        str(suite_file),
        "--concurrency",
        "1",
        "--results",
        str(tmp_path / "r"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"endpoint {url} does not answer: ConnectionRefusedError" in done.stdout + done.stderr
    failed = [r for r in records(tmp_path / "r") if r["kind"] == "failed"]
    assert failed and failed[0]["unavailable"] and url in failed[0]["reason"]


# ---- a real server --------------------------------------------------------------------------------------


def _smollm2_gguf() -> Path:
    from sizebench.planning.registry import builtin
    from sizebench.weights import sources

    return sources.package_gguf(builtin("smollm2-135m"))


def _launch(module: str, log: Path):
    from sizebench.engines.llamacpp_server import engine as llamacpp_server
    from sizebench.engines.serving.launch import Server, free_port, listening_socket, served_name

    listener = listening_socket() if module.startswith("sizebench") else None  # llama-cpp-python's own binds itself
    port = listener.getsockname()[1] if listener else free_port()
    served = served_name()
    command = llamacpp_server.command(_smollm2_gguf(), served, port, 2048, 2, False)
    command[2] = module  # the aligned server, or llama-cpp-python's own
    return Server(command, port, log, module, served, listener).start()


def _item_scores(rows) -> dict[tuple, list[float]]:
    return {(r["task"], d): ll for r in rows if r["kind"] == "items" for d, ll in zip(r["doc_ids"], r["lls"])}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = _launch(
        "sizebench.engines.llamacpp_server.serve_llamacpp", tmp_path_factory.mktemp("server") / "server.log"
    )
    yield started
    started.stop()
    assert not started.alive()


@pytest.mark.slow
def test_probe_passes_on_the_aligned_server_and_fails_on_llama_cpp_pythons_own(server, tmp_path):
    from sizebench.engines.serving import client

    assert client.prompt_logprobs_problem(server.base_url, server.served) is None
    own = _launch("llama_cpp.server", tmp_path / "own.log")
    try:
        problem = client.prompt_logprobs_problem(own.base_url, own.served)
    finally:
        own.stop()
    assert problem and "no generated token" in problem


@pytest.mark.slow
def test_bench_through_the_endpoint_prompts_tasks_parity_and_sweep(server, tmp_path, suite_file):
    url = f"openai:{server.base_url}#{server.served}?tokenizer=smollm2-135m"
    done = sizebench(
        "bench",
        "-m",
        url,
        "-p",
        str(suite_file),
        "--max-new-tokens",
        "16",
        "--limit",
        "10",
        "--concurrency",
        "1,2,4",
        "--sweep-requests",
        "8",
        "--sweep-output-tokens",
        "6",
        "--slo",
        "ttft=5,tpot=1",
        "--results",
        str(tmp_path / "r"),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    rows = records(tmp_path / "r")
    prompts = [r for r in rows if r["kind"] == "prompt"]
    assert len(prompts) == 2 and all(r["ttft_s"] > 0 and r["new_tokens"] > 0 for r in prompts)
    # Greedy answers move with the CPU llama.cpp was built for (GGML_NATIVE), and a bare openai: endpoint gets the
    # server's own sampling defaults (llama-cpp-python: repeat_penalty 1.1): the scores are compared instead, with
    # the same build's in-process run on this machine.
    here = tmp_path / "in-process"
    done = sizebench("eval", "-m", "llama.cpp:smollm2-135m", "--limit", "10", "--results", str(here), timeout=600)
    assert done.returncode == 0, done.stderr
    served, local = _item_scores(rows), _item_scores(records(here))
    assert len(served) >= 30 and served.keys() == local.keys()
    gaps = sorted(abs(a - b) for k in served for a, b in zip(served[k], local[k], strict=True))
    same = sum(
        max(range(len(served[k])), key=served[k].__getitem__) == max(range(len(local[k])), key=local[k].__getitem__)
        for k in served
    )
    median = gaps[len(gaps) // 2]
    assert median <= MEDIAN_LL_GAP and gaps[-1] <= LL_BOUND and same / len(served) >= PARITY_BAR, (
        f"median {median:.4f}, largest {gaps[-1]:.4f} nats, same choice {same}/{len(served)}"
    )
    levels = [r for r in rows if r["kind"] == "sweep_level"]
    assert [lv["load"] for lv in levels] == [1, 2, 4] and all(lv["errors"] == 0 for lv in levels)
    sent = [r for r in rows if r["kind"] == "served_request"]
    assert len(sent) == 24 and all(r["output_tokens"] == 6 and r["error"] is None for r in sent)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Load sweep" in report and "| concurrency 4 | 8 | 0 |" in report


@pytest.mark.slow
def test_server_killed_mid_sweep_fails_the_rung_and_keeps_its_records(tmp_path):
    from sizebench.engines import get
    from sizebench.errors import SizebenchError
    from sizebench.planning.registry import resolve
    from sizebench.specs.settings import ServeSettings
    from sizebench.stages import sweep
    from sizebench.specs.settings import LoadSettings

    spec = resolve("llama.cpp-server:smollm2-135m")[0]
    serve = ServeSettings(concurrency=(2,), requests=200, seconds=120, output_tokens=16)
    session = get(spec.engine).load(
        spec, LoadSettings(device="cpu", threads=2, server_log=str(tmp_path / "logs" / "a1-server.log"))
    )
    kept = []

    def emit(record):
        kept.append(record)
        if len(kept) == 3:
            session.server.proc.send_signal(signal.SIGKILL)

    try:
        with pytest.raises(SizebenchError, match="killed by SIGKILL mid-run"):
            sweep.run_sweep(session, serve, None, "a1", emit, lambda text: None)
    finally:
        session.close()
    assert len([r for r in kept if r.kind == "served_request" and r.error is None]) >= 3
    assert not session.server.alive() and (tmp_path / "logs").is_dir()


def test_percentiles_give_p99_only_from_100_requests():
    from sizebench.analysis.serving import percentiles

    ten = percentiles([float(v) for v in range(1, 11)])
    assert (ten["n"], ten[50], ten[90], ten[99]) == (10, 5.5, 9.1, None)  # numpy's linear interpolation
    hundred = percentiles([float(v) for v in range(1, 101)])
    assert hundred[99] == pytest.approx(99.01)
    gaps = percentiles([float(v) for v in range(1, 301)], requests=20)  # ITL: 300 gaps from 20 requests
    assert gaps["n"] == 300 and gaps[99] is None


@pytest.mark.slow
def test_two_rungs_launching_at_once_each_reach_their_own_server(tmp_path):
    """Two llama-cpp-python servers started at the same moment (two rungs on one node): each on a port bound
    before its model loads, each healthy under its own name, each answering its own client."""
    launched, errors = [], []

    def start(n):
        try:
            launched.append(_launch("sizebench.engines.llamacpp_server.serve_llamacpp", tmp_path / f"server-{n}.log"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=start, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert not errors and len(launched) == 2
        from sizebench.engines.serving.launch import listed_models

        assert launched[0].port != launched[1].port
        assert [listed_models(s.base_url) for s in launched] == [[s.served] for s in launched]
    finally:
        for server in launched:
            server.stop()
    assert not any(server.alive() for server in launched)
