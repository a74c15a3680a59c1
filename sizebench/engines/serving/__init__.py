"""What the served engines share (`openai`, `llama.cpp-server`, `vllm`): a model behind an OpenAI-compatible server.

`client` is the HTTP/SSE client (reachability, one streamed request timed chunk by chunk, the logprobs probe),
`launch` an owned server process on 127.0.0.1 for one rung, `session` the `EndpointSession` the stages drive,
and `records_of` what a served rung records at load and the tokenizer that renders its prompts.
"""
