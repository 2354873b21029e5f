"""Stage 5: serve base + adapters with vLLM's OpenAI-compatible server and ask it cited questions.

Modules, one job each:
  config     ServerConfig / QueryConfig, the keys of config/serve.yaml
  preflight  checks made before vLLM starts (vLLM importable, port free, adapters match the base)
  server     the server's lifecycle: ServerProcess (any HTTP child) and VllmServer (`with ... as srv`)
  serve      `python -m inference.serve`: the server in the foreground until Ctrl-C
  query      `python inference/query.py` / `python -m inference.query` and `ask(...)` for the demo
Prompt, code blocks and citation checks come from the shared `answer` package.
Reads earlier stages only: nanodex (models, config, chat_client: the one OpenAI client),
trainer.manifest (nanodex.json), brain.search and extractor.graph.
"""
