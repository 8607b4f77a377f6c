"""evalkit: tool-calling evaluation and benchmark harness for local LLMs."""

__version__ = "0.1.0"
