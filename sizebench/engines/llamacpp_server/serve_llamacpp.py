"""llama-cpp-python's OpenAI-compatible server, with prompt log-probabilities aligned: what `llama.cpp-server:` launches.

`python -m sizebench.engines.llamacpp_server.serve_llamacpp ARGS` takes `python -m llama_cpp.server`'s arguments and
serves the same app. One path differs: a non-streamed completion with `echo`, `logprobs` and `max_tokens=1`,
the request lm-eval's `local-completions` sends to score a context and its continuation. llama-cpp-python
0.3.36 answers it with each prompt token scored by the distribution that predicts the token after it (its
`_create_completion` pairs token i with row i of the logits, llama.py line 1752) and without the generated
token (its logits were never computed): measured on "The capital of France is Paris", " of" came back at
-10.5 nats with " of" the top choice at -0.41. Scored that way a task runs near chance level, as the
issue's lm-eval #4158 shows. Here token i is scored by row i-1, the generated token included, in the
OpenAI layout (the first token null); every other request is the library's own. Launched by sizebench, it
serves on the listening socket it is handed (SIZEBENCH_LISTEN_FD), bound before the model loads.
"""

from __future__ import annotations

import os
import socket
import time
import types
import uuid

import llama_cpp
import numpy as np

from sizebench.engines.serving.launch import LISTEN_FD


class AlignedLlama(llama_cpp.Llama):
    def _create_completion(self, prompt, *args, **kwargs):
        scoring = (
            kwargs.get("echo")
            and kwargs.get("logprobs") is not None
            and not kwargs.get("stream")
            and kwargs.get("max_tokens") == 1
            and isinstance(prompt, str)
            and prompt
        )
        if not scoring:
            yield from super()._create_completion(prompt, *args, **kwargs)
            return
        yield self._scored_echo(prompt, int(kwargs["logprobs"]), kwargs.get("model"))

    def _scored_echo(self, prompt: str, top: int, model: str | None) -> dict:
        tokens = self.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= self.n_ctx():
            raise ValueError(f"Requested tokens ({len(tokens) + 1}) exceed context window of {self.n_ctx()}")
        self.reset()
        self.eval(tokens)
        rows = llama_cpp.Llama.logits_to_logprobs(self.scores[: len(tokens)])
        generated = int(np.argmax(rows[-1]))  # temperature 0: what lm-eval asks for
        every = tokens + [generated]
        start = 1 if tokens[0] == self.token_bos() and self._model.add_bos_token() else 0
        strings, logprobs, tops, offsets, offset = [], [], [], [], 0
        for k in range(start, len(every)):
            piece = self.detokenize([every[k]], prev_tokens=every[:k]).decode("utf-8", errors="ignore")
            strings.append(piece)
            offsets.append(offset)
            offset += len(piece)
            if k == 0:
                logprobs.append(None)
                tops.append(None)
                continue
            row = rows[k - 1]
            best = np.argsort(row)[::-1][:top]
            choice = {
                self.detokenize([int(i)], prev_tokens=every[:k]).decode("utf-8", errors="ignore"): float(row[i])
                for i in best
            }
            choice[piece] = float(row[every[k]])
            logprobs.append(float(row[every[k]]))
            tops.append(choice)
        logprobs[0], tops[0] = None, None  # the OpenAI layout: the first token has no log-probability
        return {
            "id": f"cmpl-{uuid.uuid4()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model or self.model_path,
            "choices": [
                {
                    "text": prompt + strings[-1],
                    "index": 0,
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": strings,
                        "text_offset": offsets,
                        "token_logprobs": logprobs,
                        "top_logprobs": tops,
                    },
                }
            ],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": 1, "total_tokens": len(tokens) + 1},
        }


def serve_on(fd: int):
    """uvicorn.run's stand-in: the app served on the listening socket `fd` that sizebench bound and handed over
    (sizebench.engines.serving.launch), so the port is ours from before the model loads; host and port unused."""

    def run(app, host=None, port=None, **settings):
        import uvicorn

        sock = socket.socket(fileno=fd)
        uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[sock])

    return types.SimpleNamespace(run=run)


def main() -> None:
    from llama_cpp.server import __main__ as server_main

    llama_cpp.Llama = AlignedLlama  # the server builds its model as llama_cpp.Llama(...) (server/model.py)
    fd = os.environ.pop(LISTEN_FD, None)
    if fd is not None:
        server_main.uvicorn = serve_on(int(fd))  # its main() calls uvicorn.run(app, host=..., port=..., ...)
    server_main.main()


if __name__ == "__main__":
    main()
