"""The `openai:` engine: a model already served at an OpenAI-compatible URL (vLLM, SGLang, TGI, llama.cpp, Ollama).

Nothing is launched: the endpoint must answer at the start (else the rung is unavailable, with the URL and
the error, and the run goes on). Its size is the tokenizer model's published size, unknown without one.
"""

from __future__ import annotations

import time

from sizebench.engines.base import Engine
from sizebench.engines.openai import expression


class OpenAIEndpointEngine(Engine):
    name = "openai"
    served = True
    names_models = True

    def types(self) -> dict[str, str]:
        return {}

    def model_of(self, expression_text: str, resolve_one):
        return expression.parse(expression_text, resolve_one)

    def check(self, spec, device: str) -> None:
        """The URL's shape (a stored plan's too); whether it answers is found at load: unavailable then."""
        expression.check_url(expression.split(spec.location)[0], f"model {spec.name}")

    def resources(self, spec, device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        return {"num_cpus": 1}  # the client only: the model's memory is the server's

    def load(self, spec, settings):
        from sizebench.engines.serving import client, records_of
        from sizebench.engines.serving.session import EndpointSession
        from sizebench.errors import ModelUnavailable
        from sizebench.specs.models import ModelSpec

        base, served = expression.split(spec.location)
        started = time.perf_counter()
        listed = client.require(base, served)
        if listed and served not in listed:
            raise ModelUnavailable(f"endpoint {base} does not serve '{served}' (it serves: {', '.join(listed)})")
        tokenizer, context = None, None
        if spec.tokenizer:
            tokenizer, context = records_of.tokenizer_of(ModelSpec.from_dict(spec.tokenizer))
        fmt = records_of.prompt_format(spec, tokenizer)
        session = EndpointSession(
            spec=spec,
            base_url=base,
            served=served,
            tokenizer=tokenizer,
            prompt_format=fmt,
            load_record_fn=None,
            context=context,
            serving=f"an OpenAI-compatible endpoint at {base} (its parallelism is the server's)",
        )
        load_s = time.perf_counter() - started
        session.load_record_fn = lambda attempt: records_of.endpoint_load_record(session, attempt, load_s)
        return session


ENGINE = OpenAIEndpointEngine()
