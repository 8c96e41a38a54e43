"""The chat UI: a Chainlit app on the served model's OpenAI-compatible API.

Only ui/app.py imports chainlit; the other modules are plain Python so the CLI
and the tests can use them without starting a UI.
"""
