"""A model behind an OpenAI-compatible endpoint: prompts streamed and timed, tasks through lm-eval's API model.

With a tokenizer (`?tokenizer=MODEL`, or the launched model's own), prompts are rendered as in process and
sent as text completions with the same stop strings; without one they go as chat completions of the bare
prompt. TTFT is the time to the first streamed chunk with text, decode tok/s the tokens after it over the
time after it (new tokens counted by the tokenizer, else from the server's usage, else one per chunk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sizebench.engines import formats
from sizebench.engines.base import Generation, Served, Session
from sizebench.engines.serving import client
from sizebench.errors import SizebenchError
from sizebench.specs.models import ModelSpec
from sizebench.runstore import jsonl

REQUEST_TIMEOUT_S = 600.0  # a hung server is ended by --timeout; this only bounds a single request


@dataclass
class EndpointSession(Session, Served):
    spec: ModelSpec
    base_url: str
    served: str
    tokenizer: Any  # transformers' tokenizer, or None
    prompt_format: str  # "chat" without a tokenizer: chat completions of the bare prompt
    load_record_fn: Any  # attempt -> LoadRecord, from whoever made the session
    context: int | None = None
    server: Any = None  # sizebench.engines.serving.launch.Server when launched for the rung
    sampling: dict = field(default_factory=dict)  # server-specific fields for in-process parity (llama.cpp's)
    serving: str = "an OpenAI-compatible endpoint"  # how it is served, parallelism included, for the report
    device: str = "server"
    threads: int = 0  # the server's threads where launched here
    request_timeout_s: float = REQUEST_TIMEOUT_S

    def load_record(self, attempt: str):
        return self.load_record_fn(attempt)

    @property
    def chat(self) -> bool:
        return self.tokenizer is None

    def render(self, prompt) -> formats.Rendered:
        if self.tokenizer is None:
            text = f"{prompt.text}\n\n{prompt.context}" if prompt.context else prompt.text
            return formats.Rendered(text, (), False)
        return formats.render(self.prompt_format, prompt.text, prompt.context, self.tokenizer)

    def encode(self, text: str, special: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def prompt_tokens(self, rendered: formats.Rendered) -> int:
        return len(self.encode(rendered.text, rendered.add_special_tokens)) if self.tokenizer is not None else 0

    def context_window(self) -> int | None:
        return self.context

    def payload(self, rendered: formats.Rendered, settings, limit: int) -> dict:
        body = {
            "model": self.served,
            "max_tokens": limit,
            "seed": settings.seed,
            "temperature": settings.temperature if settings.do_sample else 0.0,
            "top_p": settings.top_p if settings.do_sample else 1.0,
            **self.sampling,
        }
        if settings.do_sample and "top_k" in self.sampling:
            body["top_k"] = settings.top_k
        if rendered.stop_strings:
            body["stop"] = list(rendered.stop_strings)
        body["stream_options"] = {"include_usage": True}  # the server's token count, on both paths
        if self.chat:
            return {**body, "messages": [{"role": "user", "content": rendered.text}]}
        return {**body, "prompt": rendered.text}

    def stream(self, body: dict, started: float | None = None) -> client.Streamed:
        return client.stream(self.base_url, body, self.request_timeout_s, self.chat, started=started)

    def failed_server(self) -> str | None:
        return self.server.exited() if self.server is not None else None

    def output_tokens(self, text: str) -> int | None:
        return len(self.encode(text, False)) if self.tokenizer is not None else None

    def generate(self, rendered, settings, max_new_tokens=None, meter=None) -> Generation:
        limit = max_new_tokens or settings.max_new_tokens
        out = self.stream(self.payload(rendered, settings, limit))
        if out.error:
            raise SizebenchError(self.failed_server() or f"{self.base_url}: {out.error}")
        text = jsonl.repair(out.text, f"{self.base_url} answer")  # an emoji split across two streamed events
        answer = formats.cut_at_stop(text, rendered.stop_strings)
        if self.tokenizer is not None:
            ids = tuple(self.encode(text, False))
        else:  # no tokenizer: the server's count, else one token per streamed chunk
            ids = tuple(range(out.usage_tokens or len(out.chunk_s)))
        tokens = self.prompt_tokens(rendered)
        return Generation(answer, ids, tokens, min(out.ttft_s or out.e2e_s, out.e2e_s), out.e2e_s)

    def peak_rss_mb(self) -> float:
        """The server's process tree where launched; the worker's own peak otherwise (the client)."""
        if self.server is not None and self.server.peak_tree_rss_mb:
            return self.server.peak_tree_rss_mb
        return super().peak_rss_mb()

    # ---- tasks ------------------------------------------------------------------------------------

    def tasks_unavailable(self) -> str | None:
        if self.tokenizer is None:
            return (
                f"{self.base_url}: no tokenizer given (openai:URL#NAME?tokenizer=MODEL); lm-eval needs one to "
                "split context and continuation"
            )
        problem = client.prompt_logprobs_problem(self.base_url, self.served)
        return f"{self.base_url} cannot score prompts for lm-eval: {problem}" if problem else None

    def lm(self, batch_size: str):
        from lm_eval.models.openai_completions import LocalCompletionsAPI

        lm = LocalCompletionsAPI(
            base_url=f"{self.base_url}/completions",
            model=self.served,
            tokenizer_backend="huggingface",
            tokenizer=self.tokenizer.name_or_path,
            tokenized_requests=False,
            num_concurrent=1,
            max_retries=3,
            max_length=self.context or 2048,
            timeout=int(self.request_timeout_s),
        )
        return lm, "1 request at a time (lm-eval local-completions)"

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
