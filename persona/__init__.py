"""persona: teach a chat model who it is, serve it, chat with it, prove it still knows."""

__version__ = "0.1.0"
