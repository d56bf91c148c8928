"""The mainmast llm service.

It puts OpenAI, Azure OpenAI, Anthropic, Gemini and Ollama behind one API with fallback.

Run it with `mainmast-llm serve` (default 127.0.0.1:50053); settings come from
`MAINMAST_LLM_*` environment variables (see `mainmast_llm.settings`).
"""
