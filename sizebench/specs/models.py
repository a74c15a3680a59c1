"""A model as sizebench describes it (ModelSpec): where its weights come from, what runs it, how it is held; and
the architectures of the built-in hub models, known without the Hub. Plain values: the registry (sizebench.planning.registry)
builds them from what the user typed, engines and weights read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Where a model's weights come from; see sizebench.weights.sources for how each is loaded.
HUB, GGUF_PACKAGE, LOCAL_DIR, GGUF_FILE = "hub", "gguf-package", "local", "gguf-file"
# `--weights`: the distributed weights, or random ones built from the config (a cost-only rung whose name
# carries RANDOM_MARK, so every table marks it and it never mixes with the real rows of the same model).
REAL, RANDOM = "real", "random"
RANDOM_MARK = "random weights: cost only"
DEFAULT_ENGINE = "transformers"  # what runs a model whose expression names no engine


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    params: int | None  # published TOTAL parameter count (embeddings included); None when unknown until loaded
    source: str  # one of HUB, GGUF_PACKAGE, LOCAL_DIR, GGUF_FILE
    location: str  # hub id, Python package name, or filesystem path
    revision: str | None = None
    prompt_format: str = "auto"  # dolly | chat | plain | auto (decided from the tokenizer)
    dtype: str = "auto"
    gguf_file: str | None = None  # file name inside the package / folder, for GGUF sources
    quantization: str | None = None  # how the distributed weights are stored, e.g. GGUF Q4_1
    params_non_embedding: int | None = None  # total minus input and untied output embeddings (Pythia's count)
    precision: str | None = None  # how the weights are held in memory (`name@int8`); see sizebench.engines.hf.precision
    engine: str = DEFAULT_ENGINE  # what runs the model; with precision, the row's identity (sizebench.analysis.sizes)
    tokenizer: dict | None = None  # an endpoint's (`openai:`): the spec of the model whose tokenizer renders prompts
    weights: str = "real"  # REAL, or RANDOM: built from the config with random weights (`--weights random`)
    base: str | None = None  # the model this rung is a variant of (its name before ENGINE: and @TYPE); None: itself

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return cls(**data)


def _neox(hidden: int, layers: int, heads: int, vocab: int) -> dict:
    """A GPT-NeoX config.json as Pythia's (EleutherAI/pythia README's table and models/*.yml)."""
    return {
        "model_type": "gpt_neox",
        "architectures": ["GPTNeoXForCausalLM"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        "vocab_size": vocab,
        "max_position_embeddings": 2048,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "use_parallel_residual": True,
        "tie_word_embeddings": False,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }


# The architectures of the built-in hub models, keyed by hub id, so sizebench knows their shapes (placement,
# `sizebench plan`, random-weight rungs) without the Hub: dolly-v2-3b/7b/12b have pythia-2.8b/6.9b/12b's
# shapes with Dolly's 50,280-token vocabulary; miniDolly has pythia-70m's (vocabulary 50,304).
CONFIGS: dict[str, dict] = {
    "marouni/miniDolly": _neox(512, 6, 8, 50_304),
    "databricks/dolly-v2-3b": _neox(2560, 32, 32, 50_280),
    "databricks/dolly-v2-7b": _neox(4096, 32, 32, 50_280),
    "databricks/dolly-v2-12b": _neox(5120, 36, 40, 50_280),
}


def known_config(spec: "ModelSpec") -> dict | None:
    """The architecture sizebench knows for a hub model without fetching anything (a copy), else None."""
    config = CONFIGS.get(spec.location) if spec.source == HUB else None
    return dict(config) if config else None
