"""The `llama.cpp-server:` engine: llama-cpp-python's OpenAI-compatible server launched on the rung's GGUF.

The GGUF is the llama.cpp engine's (as distributed, or made in `@TYPE` by llama.cpp's quantizer), served by
sizebench.engines.llamacpp_server.serve_llamacpp (the library's server, prompt logprobs aligned) with `logits_all`
so lm-eval can score prompts. It serves one request at a time: concurrent requests queue in the server.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from sizebench.engines.llamacpp.engine import LlamaCppEngine

SERVING = "llama-cpp-python's server (one request at a time, logits_all)"


def command(gguf: Path, served: str, port: int, n_ctx: int, threads: int, gpu: bool, extra: str = "") -> list[str]:
    return [
        sys.executable,
        "-m",
        "sizebench.engines.llamacpp_server.serve_llamacpp",
        "--model",
        str(gguf),
        "--model_alias",
        served,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--n_batch",
        "512",
        "--logits_all",
        "true",
        "--interrupt_requests",
        "false",  # queue concurrent requests, never cut one short
        "--n_gpu_layers",
        "-1" if gpu else "0",
        *shlex.split(extra),
    ]


class LlamaCppServerEngine(LlamaCppEngine):
    name = "llama.cpp-server"
    served = True

    def check(self, spec, device: str) -> None:
        import importlib.util

        super().check(spec, device)
        if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("sse_starlette") is None:
            from sizebench.errors import SizebenchError

            raise SizebenchError(
                f"{spec.name}: llama-cpp-python's server needs its extra: run `make llama-cpp` or "
                "pip install 'llama-cpp-python[server]'"
            )

    def load(self, spec, settings):
        from sizebench.engines.llamacpp import session as llamacpp
        from sizebench.engines.serving import records_of
        from sizebench.engines.serving.launch import Server, listening_socket, served_name
        from sizebench.engines.serving.session import EndpointSession

        source, folder, _, distributed = llamacpp._gguf_of(spec)
        shipped = llamacpp.shipped_type(source)
        path = source
        if spec.precision and spec.precision != shipped:
            from sizebench.weights import gguf_requant

            path = gguf_requant.prepare(source, spec.precision).path
        tokenizer = llamacpp.hf_tokenizer(source) if folder is None else llamacpp._folder_tokenizer(folder)
        threads = settings.threads or len(os.sched_getaffinity(0))
        n_ctx = records_of.gguf_context(path)
        listener = listening_socket()  # bound now: no other server can take the port while the model loads
        port = listener.getsockname()[1]
        served = served_name()
        server = Server(
            command(path, served, port, n_ctx, threads, settings.device == "cuda", settings.server_args),
            port,
            settings.server_log_path(),
            "llama-cpp-python server",
            served,
            listener,
        )
        server.start()
        try:
            session = EndpointSession(
                spec=spec,
                base_url=server.base_url,
                served=served,
                tokenizer=tokenizer,
                prompt_format=records_of.prompt_format(spec, tokenizer),
                load_record_fn=None,
                context=n_ctx,
                server=server,
                serving=SERVING,
                threads=threads,
                device="cpu",
                sampling={"repeat_penalty": 1.0, "min_p": 0.0, "typical_p": 1.0, "top_k": 1},  # the in-process settings
            )
            type_name = spec.precision or shipped
            session.load_record_fn = lambda attempt: records_of.launched_gguf_load_record(
                session, attempt, path, distributed, type_name, path != source
            )
            return session
        except BaseException:
            server.stop()
            raise


ENGINE = LlamaCppServerEngine()
