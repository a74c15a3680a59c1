"""The decode loops (eager, static) and the bandwidth limit: parity on CPU in float32, records, the report's share."""

import io
import json

import pytest

from conftest import records, sizebench
from sizebench.engines.hf import decoding
from sizebench.measurement import bandwidth
from sizebench.planning.registry import builtin
from sizebench.runstore.records import BandwidthRecord, DecodeRecord, LoadRecord, PromptRecord, StageRecord, TaskRecord
from sizebench.runstore.store import RunStore

PROMPTS = (
    "What is the capital of France?",
    "Name a mountain in Japan, and a river in Peru, and say why.",
    "Rome Berlin",
    "Which currency does Japan use?",
    "Everest",
)


def test_auto_is_static_on_cuda_and_each_mode_as_given():
    assert decoding.resolve("auto", "cuda") == "static"
    assert decoding.resolve("auto", "cpu") == decoding.DEFAULT["cpu"]
    assert decoding.resolve("eager", "cuda") == "eager" and decoding.resolve("static", "cpu") == "static"
    assert decoding.Decoder("eager").generate_kwargs() == {}
    kwargs = decoding.Decoder("static", 40, compile=True).generate_kwargs()
    assert kwargs["cache_implementation"] == "static" and kwargs["max_cache_len"] == 40
    assert kwargs["compile_config"].mode == decoding.COMPILE_MODE
    assert "compile_config" not in decoding.Decoder("static", 40).generate_kwargs()


def test_kv_bytes_count_keys_and_values_of_every_layer_and_a_sliding_window_only_once_full():
    from transformers import Gemma3TextConfig, GPTNeoXConfig

    neox = GPTNeoXConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3)
    assert decoding.kv_bytes_per_position(neox, 2) == 3 * 2 * 4 * 16 * 2
    gemma = Gemma3TextConfig(
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=10,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
    )
    per_layer = 2 * 1 * 8 * 4
    assert decoding.kv_bytes_per_position(gemma, 4) == 6 * per_layer
    assert decoding.kv_bytes_per_position(gemma, 4, cache_len=100) == round(per_layer * (5 * 10 + 100) / 100)


def test_static_decode_gives_the_eager_loops_greedy_tokens_on_cpu_in_float32(tiny_model):
    from sizebench.engines.hf import loader
    from sizebench.planning.registry import resolve
    from sizebench.specs.settings import GenSettings
    from sizebench.specs.prompts import Prompt

    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", "float32")
    prompts = tuple(Prompt(f"p{i}", text) for i, text in enumerate(PROMPTS))
    rendered = [loaded.render(p) for p in prompts]
    tokens, batched = {}, {}
    for mode in ("eager", "static"):
        settings = GenSettings(max_new_tokens=12, stop_at_eos=False, decode=mode, batch_size=2)
        loaded.prepare_decode(rendered, settings)
        made = [loaded.generate(r, settings) for r in rendered]
        tokens[mode] = [m.token_ids for m in made]
        record = loaded.decode_record("a", 0.5)
        assert record.mode == mode and record.device == "cpu" and not record.compiled
        assert record.kv_bytes_per_position == 2 * 2 * 2 * 16 * 4  # layers x (K, V) x heads x head dim x fp32
        single = [PromptRecord("tiny-neox", "a", "p0", "q", [], "", None, 10, 12, 0.1, 1.0, 11.0)]
        batched[mode] = loaded.batched_throughput(prompts, settings, "a", single)  # 5 prompts: the last batch padded
        assert batched[mode].decode == mode and batched[mode].warmup_s > 0
    assert tokens["static"] == tokens["eager"]
    assert all(len(t) == 12 for t in tokens["eager"])
    longest = max(loaded.prompt_tokens(r) for r in rendered)
    assert record.cache_len == longest + 12
    assert record.cache_mb == pytest.approx(record.kv_bytes_per_position * record.cache_len / 2**20)
    assert batched["static"].new_tokens == batched["eager"].new_tokens == 5 * 12  # padding rows not counted


def test_bandwidth_is_a_timed_copy_and_its_command_fails_below_the_published_share(capsys):
    found = bandwidth.measure("cpu", 64 * 2**20, repeats=2)
    assert found.copy_bytes == 64 * 2**20 and len(found.runs_s) == 2
    assert found.bytes_per_s == pytest.approx(2 * found.copy_bytes / min(found.runs_s))
    assert bandwidth.published_gb_s("NVIDIA H200") == 4800 and bandwidth.published_gb_s("NVIDIA H100 80GB HBM3") == 3350
    assert bandwidth.published_gb_s("Some Card") is None
    assert (
        bandwidth.main(["--device", "cpu", "--copy-gib", "0.0625", "--min-share", "0.8", "--published-gb-s", "1e9"])
        == 1
    )
    assert "below 80%" in capsys.readouterr().err
    assert bandwidth.main(["--device", "cpu", "--copy-gib", "0.0625", "--min-share", "0.8"]) == 2
    assert (
        bandwidth.main(["--device", "cpu", "--copy-gib", "0.0625", "--min-share", "0.01", "--published-gb-s", "0.001"])
        == 0
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["device"] == "cpu" and line["share_of_published"] > 1


def _run(tmp_path, decodes: dict[str, float], with_bandwidth: bool = True) -> RunStore:
    """A stored run of three Dolly rungs on CPU: weights 1,000 / 2,000 / 4,000 MiB, the given decode tok/s."""
    names = list(decodes)
    store = RunStore.create(
        tmp_path,
        {
            "command": "sizebench bench",
            "environment": {"started": "2026-12-04T10:00:00"},
            "plan": {"models": [builtin(n).to_dict() for n in names]},
        },
    )
    if with_bandwidth:
        store.append(BandwidthRecord(names[0], "a", "cpu", "cpu", 10e9, 2**30, [0.3, 0.2]))
    for i, (name, rate) in enumerate(decodes.items()):
        store.append(
            LoadRecord(
                name,
                "a",
                "dolly",
                "hub",
                10**9 * 2**i,
                1000.0 * 2**i,
                1000.0 * 2**i,
                None,
                None,
                1.0,
                "cached",
                "float32",
                "cpu",
                1,
                2,
                "dolly",
                100.0,
                None,
            )
        )
        store.append(DecodeRecord(name, "a", "static", "cpu", 2.5, 100, 1.0, 2**20 // 100))
        store.append(
            PromptRecord(name, "a", "p1", "Q?", ["Paris"], "Paris", True, 10, 33, 0.1, 1.0, rate, [0.1], [1.0], [rate])
        )
        store.append(TaskRecord(name, "a", "arc_easy", "acc", 0.5 + i / 10, 0.02, 500, "1.0", 0, None, 1.0))
        store.append(StageRecord(name, "a", "prompts", 1.0, 100.0 + i, None))
    return store


def _report(store, tmp_path) -> str:
    from rich.console import Console

    from sizebench import report

    return report.publish([store.dir], tmp_path / "out", Console(file=io.StringIO())).read_text()


@pytest.mark.long
def test_report_shows_each_rungs_share_of_its_limit_and_keeps_speed_ratios_where_decode_falls_with_size(tmp_path):
    from sizebench.analysis import limit
    from sizebench.runstore import frames

    store = _run(tmp_path, {"dolly-v2-3b": 6.0, "dolly-v2-7b": 3.5, "dolly-v2-12b": 1.8})
    found = limit.limits(frames.load([store.dir]))
    three = found["dolly-v2-3b"]
    assert three.kv_bytes == pytest.approx(2**20 // 100 * 100)  # a static cache is read whole: 100 positions
    assert three.limit_tok_per_s == pytest.approx(10e9 / (1000 * 2**20 + three.kv_bytes))
    assert three.share == pytest.approx(6.0 / three.limit_tok_per_s)
    assert limit.overhead_bound(found) is None
    text = _report(store, tmp_path)
    assert "decode % of limit" in text.split("## Summary")[1].split("## ")[0]
    cost = text.split("## Cost frontier")[1].split("\n## ")[0]
    assert "limit tok/s" in cost and "10.0 GB/s on cpu" in cost and "static (2.5)" in cost
    assert "preallocated: dolly-v2-3b 1 MiB a sequence" in cost
    assert "overhead-bound" not in text and "decode speed x" in text.split("## Conclusion")[1]


def test_a_rung_offloaded_to_cpu_ram_gets_no_single_limit(tmp_path):
    from dataclasses import replace

    from sizebench.analysis import limit
    from sizebench.runstore import frames

    store = _run(tmp_path, {"dolly-v2-3b": 6.0, "dolly-v2-7b": 3.5})
    load = next(r for r in store.records() if r["kind"] == "load" and r["model"] == "dolly-v2-7b")
    fields = {k: v for k, v in load.items() if k != "kind"}
    store.append(replace(LoadRecord(**fields), attempt="b", offloaded=True, offload_cpu_gib=1.0))
    assert set(limit.limits(frames.load([store.dir]))) == {"dolly-v2-3b"}


@pytest.mark.long
def test_rows_whose_decode_does_not_fall_with_size_are_called_overhead_bound_and_get_no_speed_ratio(tmp_path):
    text = _report(_run(tmp_path, {"dolly-v2-3b": 2.0, "dolly-v2-7b": 2.9, "dolly-v2-12b": 2.1}), tmp_path)
    summary, cost = text.split("## Summary")[1].split("\n## ")[0], text.split("## Cost frontier")[1].split("\n## ")[0]
    for part in (summary, cost):
        assert (
            "**These decode figures are overhead-bound**: decode does not fall with size (dolly-v2-12b reads x4.0"
            in part
        )
    conclusion = text.split("## Conclusion")[1].split("\n## ")[0]
    assert "running peak memory x" in conclusion and "decode speed" not in conclusion
    assert "time to first token" not in conclusion


def test_a_run_without_a_bandwidth_record_renders_as_before(tmp_path):
    text = _report(_run(tmp_path, {"dolly-v2-3b": 2.0, "dolly-v2-7b": 2.9}, with_bandwidth=False), tmp_path)
    assert "% of limit" not in text and "overhead-bound" not in text and "decode speed x" in text


def test_compare_on_cpu_records_the_decode_loop_and_the_bandwidth_once(tiny_model, tiny_ender, suite_file, tmp_path):
    done = sizebench(
        "compare",
        "--models",
        f"{tiny_model},{tiny_ender}",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "6",
        "--decode",
        "static",
        "--batch-size",
        "2",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    stored = records(tmp_path)
    assert [r["device"] for r in stored if r["kind"] == "bandwidth"] == ["cpu"]  # one per run and device
    assert {(r["model"], r["mode"]) for r in stored if r["kind"] == "decode"} == {
        ("tiny-neox", "static"),
        ("tiny-ender", "static"),
    }
    assert {r["decode"] for r in stored if r["kind"] == "throughput"} == {"static"}
    text = (tmp_path / "report.md").read_text()
    assert "decode % of limit" in text and "static (" in text


def test_an_unknown_decode_mode_is_a_usage_error(cli, suite_file):
    code, _, err = cli("compare", "--models", "offline", "--prompts", str(suite_file), "--decode", "fast")
    assert code == 2 and "invalid --decode 'fast'; choose one of: auto, eager, static" in err
