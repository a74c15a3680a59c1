"""Shared fixtures: a temp results folder for every test, and tiny GPT-NeoX models built locally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests' fake engine (tests/fake_engine), `fake:FOLDER`, in this process and every worker it starts; the
# workers import this checkout's sizebench (REPO first), whatever else the environment has installed.
os.environ["SIZEBENCH_EXTRA_ENGINES"] = "fake=fake_engine.engine"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "tests"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
)
CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "What is the highest mountain in Japan? Mount Fuji is the highest mountain in Japan.",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction: ### Response: Input: Question: Answer:",
    "Rome Berlin Madrid Tokyo Lima Cairo Everest Fuji Euro yen dollar peso",
]


# Fixtures that build torch models: the shared ones here, and test_agreement's ladder and test_judging's run
MODEL_FIXTURES = {"tiny_model", "tiny_wide", "tiny_ender", "tiny_eos", "offline_ladder_compare", "ladder", "made_run"}


def pytest_collection_modifyitems(items):
    """A test using a model fixture builds a torch model: marked `models`, outside the fast tier."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test touches the user's results or the network; the GGUF cache stays shared (slow tests)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.chdir(tmp_path)


def build_tiny_neox(
    folder: Path,
    always_end: bool = False,
    always_eos: bool = False,
    hidden: int = 32,
    extra_rows: int = 0,
    vocab_size: int = 300,
    seed: int = 0,
) -> Path:
    """A 2-layer GPT-NeoX with random weights and a BPE tokenizer trained on CORPUS.

    always_end: weights set so that every next token is `### End`, to exercise the Dolly stop.
    always_eos: every next token is EOS, and no pad token (as Pythia's and Dolly's tokenizers: the loader
    pads with EOS), to exercise decoding that does not stop at EOS.
    hidden, seed: another size of the same ladder (same tokenizer); extra_rows: logit rows past the
    tokenizer's length, as miniDolly's 50,304 against its 50,280 tokens; vocab_size: another tokenizer.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|unk|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        unk_token="<|unk|>",
        pad_token=None if always_eos else "<|pad|>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["### End", "### Instruction:", "### Response:"]})
    torch.manual_seed(seed)
    config = GPTNeoXConfig(
        vocab_size=len(fast) + extra_rows,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=256,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.eos_token_id,
    )
    model = GPTNeoXForCausalLM(config)
    always = "### End" if always_end else "<|endoftext|>" if always_eos else None
    if always:
        emit_only(model, fast.convert_tokens_to_ids(always))
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


RAM_GIB = 110  # the Dolly seeds' T4 box


def half_the_weights_free(cfg, dtype="float32") -> int:
    """Free GPU memory for the runtime (activations, KV cache, room to stream one offloaded layer in) and half
    the weights: what tests/test_gpu.py gives the loader so that offload must engage."""
    import json

    from sizebench.engines.hf import placement

    whole = placement.place(cfg, dtype, [], RAM_GIB * 2**30)
    largest = max(u.weight_bytes for u in placement.layer_units(json.dumps(cfg, sort_keys=True), dtype))
    runtime = whole.activation_bytes + whole.kv_bytes + largest
    return int((runtime + whole.weights_bytes / 2) / (1 - placement.ALLOCATOR_SLACK))


def emit_only(model, token_id: int) -> None:
    """Weights of a GPT-NeoX set so that every next token is `token_id`, whatever came before."""
    import torch

    with torch.no_grad():
        model.gpt_neox.final_layer_norm.weight.zero_()
        model.gpt_neox.final_layer_norm.bias.fill_(1.0)
        model.get_output_embeddings().weight.zero_()
        model.get_output_embeddings().weight[token_id] = 1.0


def tiny_gguf(path: Path) -> Path:
    """A valid GGUF of one tensor that no transformers model can be built from (no tokenizer, no shapes)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_token_list(["<s>", "a", "b", "ab"])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(4, 3))
    _write(writer)
    return path


def tiny_llama_gguf(path: Path, hidden: int = 16, ffn: int = 32) -> Path:
    """A one-layer Llama with random float32 weights and an 8-token BPE vocabulary: converts in seconds."""
    import gguf
    import numpy as np

    tokens = ["<s>", "</s>", "a", "b", "c", "ab", "bc", "abc"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(["a b", "b c", "ab c"])
    writer.add_token_types([3, 3] + [1] * 6)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = np.random.default_rng(0)
    shapes = {
        "token_embd": (len(tokens), hidden),
        "output": (len(tokens), hidden),
        **{f"blk.0.{n}": (hidden, hidden) for n in ("attn_q", "attn_k", "attn_v", "attn_output")},
        "blk.0.ffn_gate": (ffn, hidden),
        "blk.0.ffn_up": (ffn, hidden),
        "blk.0.ffn_down": (hidden, ffn),
    }
    for name, shape in shapes.items():
        writer.add_tensor(f"{name}.weight", rng.standard_normal(shape).astype(np.float32))
    for name in ("blk.0.attn_norm", "blk.0.ffn_norm", "output_norm"):
        writer.add_tensor(f"{name}.weight", np.ones(hidden, np.float32))
    _write(writer)
    return path


def _write(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_neox(tmp_path_factory.mktemp("models") / "tiny-neox")


@pytest.fixture(scope="session")
def tiny_wide(tmp_path_factory) -> Path:
    """Layer widths real models have (multiples of 64), which bitsandbytes' packed 4-bit CPU path needs."""
    return build_tiny_neox(tmp_path_factory.mktemp("models") / "tiny-wide", hidden=64)


@pytest.fixture(scope="session")
def tiny_ender(tmp_path_factory) -> Path:
    return build_tiny_neox(tmp_path_factory.mktemp("models") / "tiny-ender", always_end=True)


@pytest.fixture(scope="session")
def tiny_eos(tmp_path_factory) -> Path:
    return build_tiny_neox(tmp_path_factory.mktemp("models") / "tiny-eos", always_eos=True)


@pytest.fixture(scope="session")
def offline_ladder_compare(tmp_path_factory) -> Path:
    """The results folder of one `sizebench compare` of the geography suite on the offline ladder (slow, ~2 min on
    2 cores): real answers that test_real_models and test_pipeline_parity both check, generated once."""
    results = tmp_path_factory.mktemp("offline-ladder")
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(results / "hf-home")}  # as _isolated
    done = sizebench(
        "compare",
        "--prompts",
        str(REPO / "prompts" / "geography.txt"),
        "--models",
        "offline",
        "--max-new-tokens",
        "16",
        "--repeat",
        "1",
        "--results",
        str(results),
        timeout=900,
        env=offline,
    )
    assert done.returncode == 0, done.stderr
    return results


@pytest.fixture
def fake_ladder(tmp_path) -> str:
    """Two fake models, `fake:small` (1M parameters, knows France's capital) and `fake:big` (3M, knows more): the
    model expression for both (tests/fake_engine)."""
    from fake_engine import make_model

    small = make_model(tmp_path / "fake-models" / "small", params=1_000_000, answers={"France": "Paris"})
    big = make_model(
        tmp_path / "fake-models" / "big",
        params=3_000_000,
        answers={"France": "Paris", "Japan": "Mount Fuji", "Peru": "Lima"},
    )
    return f"fake:{small},fake:{big}"


@pytest.fixture
def suite_file(tmp_path) -> Path:
    path = tmp_path / "mini.txt"
    path.write_text("# two questions\nWhat is the capital of France? => Paris\nName a mountain in Japan. => Fuji\n")
    return path


def sizebench(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a child process, as a user runs it (env: variables set on top of ours)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sizebench", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def rendered_apart(run_dir: Path, out: Path, *args: str) -> list[dict[str, bytes]]:
    """`sizebench report` on one run in two fresh processes with different string hashing (PYTHONHASHSEED), as
    two sweeps or a later `report` render it: each process's files (report and plots) by name."""
    renders = []
    for hash_seed in ("0", "1"):  # 0: hashing not randomized
        folder = out / f"hash-seed-{hash_seed}"
        done = sizebench("report", str(run_dir), "--results", str(folder), *args, env={"PYTHONHASHSEED": hash_seed})
        assert done.returncode == 0, done.stderr
        renders.append({p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()})
    return renders


@pytest.fixture
def cli(monkeypatch, capsys):
    """The CLI's own entry point in this process (no torch import per call): (exit status, stdout, stderr)."""
    from sizebench.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["sizebench", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        return exited.value.code, captured.out, captured.err

    return run


def records(results: Path) -> list[dict]:
    """The records of the one run under `results`, read as sizebench reads them."""
    from sizebench.runstore.store import RunStore

    return RunStore(next((results / "runs").iterdir())).records()


def command_line(process) -> str:
    """A process's command line; "" once it has exited (a zombie not yet reaped, or gone): no longer running."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""
