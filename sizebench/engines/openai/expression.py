"""`openai:URL#SERVED_NAME[?tokenizer=MODEL]`: an OpenAI-compatible endpoint as a model, parsed into a ModelSpec.

The tokenizer, any model name sizebench resolves, renders prompts, counts tokens and gives the size and
the context window; without one, prompts go through chat completions and the size is unknown. Cheap to
import (the CLI validates with it): no HTTP here.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from sizebench.errors import SizebenchError
from sizebench.specs.models import ModelSpec

PREFIX = "openai:"
ENDPOINT = "endpoint"  # ModelSpec.source of an endpoint: location is URL#SERVED_NAME
SHAPE = "openai:URL#SERVED_NAME[?tokenizer=MODEL], e.g. openai:http://127.0.0.1:8000/v1#smollm2?tokenizer=smollm2-135m"


def parse(expression: str, resolve_one) -> ModelSpec:
    """The endpoint's spec; `resolve_one` is the registry's resolver for the tokenizer's model name."""
    body = expression[len(PREFIX) :]
    url, hash_, fragment = body.partition("#")
    if not hash_:
        raise SizebenchError(f"'{expression}' names no served model after '#'; write {SHAPE}")
    check_url(url, f"'{expression}'")
    name, question, query = fragment.partition("?")
    if not name.strip():
        raise SizebenchError(f"'{expression}' has an empty served model name after '#'; write {SHAPE}")
    options = dict(parse_qsl(query, keep_blank_values=True)) if question else {}
    unknown = sorted(set(options) - {"tokenizer"})
    if unknown or (question and not options):
        raise SizebenchError(
            f"'{expression}': unknown option '{(unknown or [query])[0]}' (only ?tokenizer=MODEL); write {SHAPE}"
        )
    tokenizer = options.get("tokenizer")
    if tokenizer is not None and not tokenizer:
        raise SizebenchError(f"'{expression}': ?tokenizer= names no model; write {SHAPE}")
    base = url.rstrip("/")
    spec = ModelSpec(
        f"openai:{name}", "OpenAI-compatible endpoint", None, ENDPOINT, f"{base}#{name}", None, "chat", engine="openai"
    )
    if tokenizer is None:
        return spec
    found = resolve_one(tokenizer)
    if len(found) != 1:
        raise SizebenchError(f"'{expression}': ?tokenizer= must name one model, not the group '{tokenizer}'")
    model = found[0]
    return replace(
        spec,
        family=f"{model.family}, served",
        params=model.params,
        prompt_format=model.prompt_format,
        params_non_embedding=model.params_non_embedding,
        tokenizer=model.to_dict(),
    )


def check_url(url: str, where: str) -> None:
    """An http(s) URL of a host and port only: user info (`user:pass@`, `127.0.0.1:8000@evil.example`) is refused,
    as it hides the host actually contacted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SizebenchError(f"{where}: '{url}' is not an http(s) URL; write {SHAPE}")
    if "@" in parts.netloc:
        raise SizebenchError(
            f"{where}: '{url}' has user info before '@' (the host contacted would be "
            f"'{parts.hostname}'); give the host and port only, the key in SIZEBENCH_OPENAI_API_KEY"
        )
    try:
        parts.port  # noqa: B018 (reading the port is what checks it)
    except ValueError:
        raise SizebenchError(f"{where}: '{url}' has a bad port; write {SHAPE}") from None


def split(location: str) -> tuple[str, str]:
    """(base URL, served name) of an endpoint spec's location."""
    base, _, name = location.partition("#")
    return base, name
