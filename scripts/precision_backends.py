"""Measure quantization backend candidates on smollm2-135m: the figures behind sizebench.engines.hf.precision's choice.

    python scripts/precision_backends.py models [NAME ...]   # per backend: load, weight bytes, decode tok/s
    python scripts/precision_backends.py layers              # one layer per backend, timed in turn

`models` loads the whole model through transformers' quantization_config or dtype and greedily decodes
48 tokens of one chat prompt (decode tok/s = 47 / (time of 48 tokens - time of 1)); it prints weight
bytes measured from storage beside `numel() x element_size()` and `get_memory_footprint()`.
`layers` times 8 smollm2-sized projections (576x1536, batch 1) per backend in interleaved rounds, so
a busy machine slows every backend alike. One JSON line (models) or one table line (layers) each.
Needs the quant extra plus the candidate that sizebench does not use: pip install optimum-quanto.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore")


def candidates() -> dict:
    from transformers import BitsAndBytesConfig, QuantoConfig, TorchAoConfig

    def torchao_int8():
        from torchao.quantization import Int8WeightOnlyConfig

        return TorchAoConfig(Int8WeightOnlyConfig())

    return {
        "float32": lambda: {"dtype": torch.float32},
        "bfloat16": lambda: {"dtype": torch.bfloat16},
        "float16": lambda: {"dtype": torch.float16},
        "torchao int8": lambda: {"dtype": torch.float32, "quantization_config": torchao_int8()},
        "bnb int8": lambda: {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)},
        "quanto int8": lambda: {"dtype": torch.float32, "quantization_config": QuantoConfig(weights="int8")},
        "bnb nf4": lambda: {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")},
        "quanto int4": lambda: {"dtype": torch.float32, "quantization_config": QuantoConfig(weights="int4")},
    }


def models(names: list[str]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sizebench.engines.hf import footprint
    from sizebench.planning import registry
    from sizebench.weights import sources

    path = sources.locate(registry.builtin("smollm2-135m")).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    table = candidates()
    for name in names or list(table):
        try:
            started = time.perf_counter()
            model = AutoModelForCausalLM.from_pretrained(path, **table[name]()).eval()
            load_s = time.perf_counter() - started
            with torch.inference_mode():  # as sizebench.stages.generation runs
                model.generate(**inputs, max_new_tokens=4, do_sample=False)
                started = time.perf_counter()
                model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False)
                first = time.perf_counter() - started
                started = time.perf_counter()
                model.generate(**inputs, max_new_tokens=48, min_new_tokens=48, do_sample=False)
                full = time.perf_counter() - started
            print(
                json.dumps(
                    {
                        "backend": name,
                        "decode_tok_s": round(47 / (full - first), 2),
                        "weight_MiB": round(footprint.weight_bytes(model) / 2**20, 1),
                        "numel_x_size_MiB": round(
                            sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1
                        ),
                        "footprint_MiB": round(model.get_memory_footprint() / 2**20, 1),
                        "load_s": round(load_s, 1),
                    }
                ),
                flush=True,
            )
        except Exception as exc:  # a backend that cannot run here is a result too
            print(json.dumps({"backend": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}), flush=True)


def layers(rounds: int = 15) -> None:
    import bitsandbytes as bnb
    from optimum.quanto import freeze, qint4, qint8, quantize
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    torch.manual_seed(0)
    base = torch.nn.Sequential(
        *[
            torch.nn.Linear(576, 1536, bias=False) if i % 2 == 0 else torch.nn.Linear(1536, 576, bias=False)
            for i in range(8)
        ]
    ).eval()

    def copied(dtype=torch.float32):
        return copy.deepcopy(base).to(dtype)

    def with_torchao(dtype):
        model = copied(dtype)
        quantize_(model, Int8WeightOnlyConfig())
        return model

    def with_quanto(weights, dtype=torch.float32):
        model = copied(dtype)
        quantize(model, weights=weights)
        freeze(model)
        return model

    def with_bnb(kind):
        out = []
        for layer in base:
            if kind == "int8":
                q = bnb.nn.Linear8bitLt(layer.in_features, layer.out_features, bias=False, has_fp16_weights=False)
                q.weight = bnb.nn.Int8Params(layer.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
            else:
                q = bnb.nn.Linear4bit(
                    layer.in_features, layer.out_features, bias=False, quant_type="nf4", compute_dtype=torch.float32
                )
                q.weight = bnb.nn.Params4bit(layer.weight.data.clone(), requires_grad=False, quant_type="nf4")
            out.append(q.to("cpu"))
        return torch.nn.Sequential(*out).eval()

    runs = {
        "float32": (base, torch.float32),
        "bfloat16": (copied(torch.bfloat16), torch.bfloat16),
        "torchao int8": (with_torchao(torch.float32), torch.float32),
        "torchao int8 (bf16)": (with_torchao(torch.bfloat16), torch.bfloat16),
        "quanto int8": (with_quanto(qint8), torch.float32),
        "quanto int4": (with_quanto(qint4), torch.float32),
        "quanto int4 (bf16)": (with_quanto(qint4, torch.bfloat16), torch.bfloat16),
        "bnb int8": (with_bnb("int8"), torch.float32),
        "bnb nf4": (with_bnb("nf4"), torch.float32),
    }
    x = torch.randn(1, 1, 576)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():  # quanto int4 fails under inference_mode; here every backend runs
        for model, dtype in runs.values():
            for _ in range(3):
                model(x.to(dtype))
        for _ in range(rounds):
            for name, (model, dtype) in runs.items():
                xi = x.to(dtype)
                started = time.perf_counter()
                for _ in range(5):
                    model(xi)
                times[name].append((time.perf_counter() - started) / 5 / len(base) * 1e6)
    reference = statistics.median(times["float32"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:22s} {median:9.1f} us/layer  speed x{reference / median:.2f} of float32")


if __name__ == "__main__":
    command, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("models", [])
    models(rest) if command == "models" else layers()
