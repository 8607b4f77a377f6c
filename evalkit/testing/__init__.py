"""Test helpers for evalkit: a scripted OpenAI-compatible HTTP server (see ``scripted_server``)."""
