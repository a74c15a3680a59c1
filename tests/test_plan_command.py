"""`sizebench plan`: the Dolly ladder on a T4 and on two cards from configs alone, the same placement as the
loader's, GGUF files for llama.cpp, served models, and bad inputs."""

import json

import pytest

from conftest import sizebench
from sizebench.measurement.memory import GIB

pytest.importorskip("transformers")


@pytest.mark.models
def test_the_t4_question_for_the_dolly_ladder():
    done = sizebench(
        "plan",
        "--models",
        "dolly,dolly-v2-12b@nf4,openai:http://127.0.0.1:9/v1#served",
        "--gpu",
        "T4",
        "--ram",
        "110GiB",
        "--json",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    rungs = {r["model"]: r for r in plan["rungs"]}
    assert [rungs[m]["kind"] for m in ("minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b")] == [
        "one-gpu",
        "one-gpu",
        "offload",
        "offload",
    ]
    twelve = rungs["dolly-v2-12b"]
    assert twelve["dtype"] == "float16" and any("no bfloat16" in n for n in twelve["notes"])  # a T4 has none
    assert 10 * GIB < twelve["cpu_bytes"] < 13 * GIB and "offloaded to CPU RAM" in twelve["where"]
    assert twelve["total_bytes"] >= twelve["weights_bytes"] + twelve["kv_bytes"] + twelve["activation_bytes"]
    assert rungs["dolly-v2-12b@nf4"]["kind"] == "one-gpu"  # 4-bit weights fit the card
    assert [r["kind"] for r in plan["rungs"] if r["engine"] == "openai"] == ["served"]
    assert "512 MiB assumed for the CUDA context" in plan["machine"]


def test_the_plan_is_the_loaders_placement():
    from sizebench.engines.hf import placement
    from sizebench.planning import fit
    from sizebench.planning.registry import resolve
    from sizebench.specs.models import CONFIGS

    where = fit.machine("16GiB,16GiB", "110GiB")
    rows = fit.plan_rows(resolve("dolly-v2-12b"), where, "bfloat16", context=1024, batch=4)
    same = placement.place(
        CONFIGS["databricks/dolly-v2-12b"], "bfloat16", where.gpu_free, where.ram_free, context=1024, batch=4
    )
    assert rows[0].kind == same.kind == "shard" and rows[0].where == "sharded over 2 GPUs"
    assert (rows[0].weights_bytes, rows[0].kv_bytes, rows[0].total_bytes) == (
        same.weights_bytes,
        same.kv_bytes,
        same.total_bytes,
    )
    assert where.gpu_free == [16 * GIB - fit.CUDA_CONTEXT_BYTES] * 2
    cpu_only = fit.plan_rows(resolve("dolly"), fit.Machine([], 24 * GIB, True, "a CPU box"), "auto")
    assert [r.kind for r in cpu_only][-1] == "refuse" and cpu_only[0].dtype == "float32"


def test_a_gguf_for_llama_cpp_is_its_tensor_bytes_plus_kv_cache(tmp_path):
    import gguf
    import numpy as np

    from conftest import _write
    from sizebench.planning import fit
    from sizebench.planning.registry import resolve
    from sizebench.weights import gguf_check

    path = tmp_path / "t.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for add, value in [
        (writer.add_block_count, 2),
        (writer.add_embedding_length, 4),
        (writer.add_head_count, 2),
        (writer.add_head_count_kv, 1),
        (writer.add_context_length, 128),
        (writer.add_feed_forward_length, 8),
    ]:
        add(value)
    writer.add_token_list(["<s>", "a", "b", "ab", "ba", "bb"])
    writer.add_tensor("token_embd.weight", np.ones((6, 4), dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((6, 4), dtype=np.float16))
    _write(writer)
    meta, tensors = gguf_check.tables(path)
    row = fit.plan_rows(resolve(f"llama.cpp:{path}"), fit.machine(None, "8GiB"), context=64)[0]
    assert row.kind == "cpu" and row.weights_bytes == sum(t.nbytes for t in tensors)
    assert row.weights_bytes == 6 * 4 * 4 + 6 * 4 * 2
    assert row.kv_bytes == 2 * 2 * 64 * 1 * 2 * 2  # K and V, 2 layers, 64 tokens, 1 KV head of 2, f16
    assert row.total_bytes > row.weights_bytes + row.kv_bytes
    made = fit.plan_rows(resolve(f"llama.cpp:{path}@q8_0"), fit.machine(None, "8GiB"), context=64)[0]
    assert made.weights_bytes == int(2 * 6 * 4 * 8.5 / 8)  # q8_0 as llama-quantize states it: 8.5 bits a weight
    assert made.notes == ["q8_0: 8.5 bits per weight as llama-quantize states them"]


@pytest.mark.parametrize(
    "args,message",
    [
        (("--gpu", "16XB"), "--gpu takes sizes like"),
        (("--ram", "-3GiB"), "--ram takes sizes like"),
        (("--context", "0"), "must be positive"),
        (("--dtype", "fp8"), "--dtype must be one of"),
        (("--models", "dolly-v2-13b"), "did you mean"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(args, message):
    done = sizebench("plan", *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
