"""The agreement stage: next-token KL divergence and friends against a reference rung, checked against a
direct computation on tiny GPT-NeoX models (sizes sharing one tokenizer, one model at two precisions)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import build_tiny_neox, records, sizebench
from fake_engine import make_model
from sizebench.specs.settings import LoadSettings
from sizebench import engines
from sizebench.measurement import divergence
from sizebench.planning.registry import resolve
from sizebench.stages import agreement_stage as agreement

JOB = LoadSettings(device="cpu", threads=1)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder")
    return {
        "small": build_tiny_neox(root / "tiny-32", hidden=32),
        "big": build_tiny_neox(root / "tiny-64", hidden=64, extra_rows=24, seed=1),  # padded logit rows
        "other": build_tiny_neox(root / "tiny-other", vocab_size=280),
    }


def session(expression: str):
    spec = resolve(expression)[0]
    return engines.get(spec.engine).load(spec, JOB)


def direct(reference, variant, seqs, dtype=None) -> dict[str, np.ndarray]:
    """The figures straight from transformers over every id: no stored form, no sizebench code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(reference))
    ref = AutoModelForCausalLM.from_pretrained(reference, dtype=torch.float32)
    var = AutoModelForCausalLM.from_pretrained(variant, dtype=dtype or torch.float32)
    out = {"kld": [], "same": [], "ln_ratio": [], "dp": []}
    with torch.inference_mode():
        for s in seqs:
            ids = torch.tensor([s.ids])
            lp = torch.log_softmax(ref(ids).logits[0, s.first : -1, :vocab].double(), -1)
            lq = torch.log_softmax(var(ids).logits[0, s.first : -1, :vocab].double(), -1)
            nxt = torch.tensor(s.ids[s.first + 1 :])
            rows = torch.arange(len(nxt))
            out["kld"].append((lp.exp() * (lp - lq)).sum(-1))
            out["same"].append(lq.argmax(-1) == lp.argmax(-1))
            out["ln_ratio"].append(lp[rows, nxt] - lq[rows, nxt])
            out["dp"].append(lq[rows, nxt].exp() - lp[rows, nxt].exp())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def test_figures_equal_a_direct_computation_and_the_stored_form_is_a_lower_bound(ladder, monkeypatch):
    big, small = session(str(ladder["big"])), session(str(ladder["small"]))
    seqs = agreement.sequences(big, [])
    assert len(seqs) == agreement.MAX_CHUNKS and all(len(s.ids) == 256 and s.first == 128 for s in seqs)  # window
    truth = direct(ladder["big"], ladder["small"], seqs)

    monkeypatch.setattr(divergence, "TOP_K", 10_000)  # every id kept: the stored form is exact
    exact = agreement.variant_figures(small, agreement.reference_distributions(big, seqs))["corpus"]
    assert exact.tokens == len(truth["kld"]) == 127 * len(seqs)
    assert exact.kld_mean == pytest.approx(truth["kld"].mean(), rel=1e-6)
    assert exact.kld_p99 == pytest.approx(np.percentile(truth["kld"], 99), rel=1e-6)
    assert exact.kld_max == pytest.approx(truth["kld"].max(), rel=1e-6)
    assert exact.same_top == pytest.approx(truth["same"].mean())
    assert exact.ppl_ratio == pytest.approx(np.exp(truth["ln_ratio"].mean()), rel=1e-6)
    assert exact.rms_dp == pytest.approx(np.sqrt((truth["dp"] ** 2).mean()), rel=1e-6)
    chunk_means = truth["kld"].reshape(len(seqs), 127).mean(axis=1)  # equal chunks: the clustered standard error
    assert exact.units == len(seqs)
    assert exact.kld_stderr == pytest.approx(chunk_means.std(ddof=1) / np.sqrt(len(seqs)), rel=1e-5)

    monkeypatch.setattr(divergence, "TOP_K", 16)  # of 303 ids: the lumped rest makes it a lower bound
    stored = agreement.reference_distributions(big, seqs)
    assert stored.top_k == 16 and stored.vocab == 303  # the tokenizer's ids, not the 327 logit rows
    lumped = agreement.variant_figures(small, stored)["corpus"]
    assert 0 < lumped.kld_mean < truth["kld"].mean()  # near-uniform random models: far below
    assert lumped.same_top == exact.same_top and lumped.ppl_ratio == pytest.approx(exact.ppl_ratio, rel=1e-6)


@pytest.mark.long
def test_the_standard_error_counts_a_chunk_once_not_each_of_its_tokens():
    rng = np.random.default_rng(0)
    chunks = np.repeat(np.arange(8), 250)
    values = rng.exponential(0.05, 8)[chunks] + rng.exponential(0.01, len(chunks))  # tokens of a chunk alike
    naive = values.std(ddof=1) / np.sqrt(len(values))
    means = np.array([values[chunks == c].mean() for c in range(8)])
    clustered = divergence.clustered_stderr(values, chunks)
    assert clustered == pytest.approx(means.std(ddof=1) / np.sqrt(8), rel=1e-9)
    assert clustered > 5 * naive  # what treating the 2,000 tokens as independent claimed
    assert (
        divergence.clustered_stderr(values, np.zeros(len(values), int)) is None
    )  # one unit: no estimate, no NaN in a record


def test_a_model_against_itself_and_at_bf16_and_the_file_round_trips(ladder, tmp_path):
    import torch

    fp32, bf16 = session(str(ladder["small"])), session(f"{ladder['small']}@bf16")
    seqs = agreement.sequences(fp32, [])[:4]
    path = tmp_path / "agreement" / "ref.npz"
    agreement.reference_distributions(fp32, seqs).save(path)
    stored = agreement.Stored.load(path)
    assert [s.ids for s in stored.sequences] == [s.ids for s in seqs]

    itself = agreement.variant_figures(fp32, stored)["corpus"]
    assert itself.kld_mean < 1e-7 and itself.kld_max < 1e-6  # 0 but for the float32 rounding of the stored form
    assert itself.same_top == 1.0 and itself.ppl_ratio == pytest.approx(1.0, abs=1e-7) and itself.rms_dp < 1e-7

    half = agreement.variant_figures(bf16, stored)["corpus"]
    truth = direct(ladder["small"], ladder["small"], seqs, dtype=torch.bfloat16)
    assert 0 < half.kld_mean <= truth["kld"].mean() * (1 + 1e-6)
    assert half.same_top == pytest.approx(truth["same"].mean())
    assert half.ppl_ratio == pytest.approx(np.exp(truth["ln_ratio"].mean()), rel=1e-6)


def test_another_tokenizer_is_not_compared(ladder, tmp_path):
    stored = agreement.reference_distributions(
        session(str(ladder["small"])), agreement.sequences(session(str(ladder["small"])), [])[:1]
    )
    reason = agreement.mismatch(stored, session(str(ladder["other"])).vocabulary())
    assert reason and "does not map the reference's 303 ids to the same tokens" in reason
    assert agreement.mismatch(stored, session(str(ladder["big"])).vocabulary()) is None


@pytest.mark.long
def test_bench_runs_the_reference_first_resumes_the_stage_and_the_report_shows_it(suite_file, tmp_path):
    """The stage's place in a run (reference first, resume, report) on the fake engine's ladder of one
    tokenizer; the figures themselves are checked on real models above."""
    fakes = tmp_path / "fakes"
    small, mid, big = (
        make_model(fakes / name, params=params, answers={"France": "Paris"}, logit_noise=noise)
        for name, params, noise in (("small", 100_000, 0.8), ("mid", 200_000, 0.6), ("big", 300_000, 0.4))
    )
    results = tmp_path / "results"
    models = f"fake:{small},fake:{mid},fake:{big}"
    done = sizebench(
        "bench",
        "--models",
        models,
        "--prompts",
        str(suite_file),
        "--limit",
        "6",
        "--max-new-tokens",
        "8",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    run = next((results / "runs").iterdir())
    rows = records(results)
    loads = [r["model"] for r in rows if r["kind"] == "load"]
    assert loads[0] == "fake:big"  # the reference (the largest of the tokenizer group) ran first
    (dist,) = [r for r in rows if r["kind"] == "distributions"]
    assert dist["model"] == "fake:big" and set(dist["tokens"]) == {"corpus", "answers"}
    assert (dist["chunk_tokens"], dist["max_chunks"], dist["top_k_asked"]) == (
        agreement.CHUNK,
        agreement.MAX_CHUNKS,
        divergence.TOP_K,
    )
    assert (run / dist["file"]).stat().st_size == dist["bytes"]
    figures = {(r["model"], r["text"]): r for r in rows if r["kind"] == "agreement"}
    assert set(figures) == {(m, t) for m in ("fake:small", "fake:mid") for t in ("corpus", "answers")}
    assert all(r["reference"] == "fake:big" and 0 < r["kld_mean"] for r in figures.values())

    report = (results / "report.md").read_text()
    assert "## Agreement with the reference rung" in report and "### Choices on the tasks" in report
    assert "| fake:mid | fake:big |" in report and (results / "plot_agreement.png").exists()

    # a worker killed in the agreement stage leaves no stage record: resume redoes that stage alone
    lines = (run / "records.jsonl").read_text().splitlines()
    cut = [
        i
        for i, line in enumerate(lines)
        if json.loads(line).get("model") == "fake:mid"
        and json.loads(line)["kind"] in ("agreement", "stage")
        and json.loads(line).get("stage", "agreement") == "agreement"
    ]
    (run / "records.jsonl").write_text("\n".join(line for i, line in enumerate(lines) if i not in cut) + "\n")
    stamp = (run / dist["file"]).stat().st_mtime_ns
    again = sizebench("bench", "--resume", run.name, "--results", str(results))
    assert again.returncode == 0, again.stderr
    rows = records(results)
    assert sum(r["kind"] == "load" and r["model"] == "fake:mid" for r in rows) == 2
    assert sum(r["kind"] == "load" for r in rows) == 4  # no other model was loaded again
    assert (run / dist["file"]).stat().st_mtime_ns == stamp
    assert {(r["model"], r["text"]) for r in rows if r["kind"] == "agreement"} == set(figures)

    refused = sizebench("report", run.name, "--results", str(results), "--reference", "fake:small")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "no next-token distributions stored for it (stored: fake:big)" in refused.stderr
    chosen = sizebench("report", run.name, "--results", str(results), "--reference", "fake:big")
    assert chosen.returncode == 0, chosen.stderr


def test_the_plan_groups_rungs_by_tokenizer_and_refuses_an_unknown_reference(ladder):
    from sizebench.errors import SizebenchError
    from sizebench.planning import references as planned

    specs = tuple(
        resolve(f"{ladder['small']}@fp32,bf16")
        + resolve(str(ladder["big"]))
        + resolve(str(ladder["other"]))
        + resolve("dolly-v2-3b,minidolly-70m,smollm2-135m@int8")
        + resolve("llama.cpp:smollm2-135m@q8_0")
    )
    mapping = planned.references(specs, "auto")
    assert mapping == {
        "tiny-32@fp32": "tiny-64",
        "tiny-32@bf16": "tiny-64",
        "tiny-64": "tiny-64",
        "dolly-v2-3b": "dolly-v2-3b",
        "minidolly-70m": "dolly-v2-3b",
        "smollm2-135m@int8": "llama.cpp:smollm2-135m@q8_0",  # 8.5 bits a weight against 8
        "llama.cpp:smollm2-135m@q8_0": "llama.cpp:smollm2-135m@q8_0",
    }
    assert "tiny-other" not in mapping  # alone with its tokenizer
    order = [specs[i].name for i in planned.run_order(specs, mapping)]
    assert order[:4] == ["tiny-64", "dolly-v2-3b", "llama.cpp:smollm2-135m@q8_0", "tiny-32@fp32"]
    assert planned.references(specs, "auto", "tiny-other")["tiny-64"] == "tiny-other"
    with pytest.raises(SizebenchError, match="--reference nope: not a model of this run"):
        planned.references(specs, "auto", "nope")
    equals = tuple(resolve("llama.cpp:smollm2-135m@f32") + resolve("smollm2-135m@fp32"))  # 32 bits a weight each
    assert set(planned.references(equals, "auto").values()) == {"smollm2-135m@fp32"}  # the model's own code


@pytest.mark.parametrize("protocol", [None, (256, 4, 64)], ids=["recorded-before", "recorded"])
def test_the_report_states_the_protocol_its_run_recorded(tmp_path, protocol):
    """The method text reads the chunk length and top-k from the reference's record; a run recorded before the
    records held them renders through the stated defaults (the committed agreement report is one)."""
    from sizebench.analysis import agreement as figures
    from sizebench.report.agreement_section import agreement_section
    from sizebench.runstore import frames
    from sizebench.runstore.records import AgreementRecord, DistributionsRecord
    from sizebench.runstore.store import RunStore

    store = RunStore.create(tmp_path, {"command": "test", "plan": {"models": []}})
    store.append(
        DistributionsRecord(
            "big", "a", "agreement/big.npz", {"corpus": 100}, 64, 50_000, "sha", 1000, *(protocol or ())
        )
    )
    store.append(
        AgreementRecord(
            "small", "b", "big", "corpus", 100, 0.1, 0.01, 0.1, 0.2, 0.3, 0.4, 0.9, 1.1, 0.01, 0.05, 0.0, 64, 4
        )
    )
    fr = frames.load([store.dir])
    chunk, _, top_k = protocol or (512, 8, 128)
    assert figures.protocol(fr) == (figures.Protocol(*protocol) if protocol else figures.RECORDED_BEFORE)
    text = agreement_section(fr, pd.DataFrame({"model": ["big", "small"]}), figures.references(fr))
    assert f"the corpus in {chunk}-token chunks" in text and f"stored as its top {top_k} log-probabilities" in text
    assert f"{divergence.bytes_per_token(50_000, 64)} bytes a token" in text
