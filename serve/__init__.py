"""Serving: the base-model conversion and the vLLM OpenAI-compatible server."""
