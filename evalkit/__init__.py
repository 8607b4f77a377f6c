"""evalkit: tool-calling evaluation and benchmark harness for local LLMs.

The Python API: `evalkit.samples_df(paths)` and `evalkit.results_df(paths)` (evalkit/frames.py),
loaded on first use so that the command line never imports pandas.
"""

__version__ = "0.1.0"

__all__ = ["samples_df", "results_df", "__version__"]


def __getattr__(name: str):
    if name in ("samples_df", "results_df"):
        from . import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
