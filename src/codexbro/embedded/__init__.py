"""The embedded provider: a small open-weight model run in this process (llama.cpp) — the
client, the engine, the tool-call grammar and parser, the KV cache, the weights."""
