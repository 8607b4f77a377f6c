"""Reports that answer "which model and which format should I deploy?".

Modules, each importing only those above it:
- model: `load_run`, entries (one per model x format), `ranked`;
- explain: why a sample failed, in words;
- compare, recommend: significance tests and flipped cases; `recommend(run_dirs, ...)`;
- build: `build_report(runs)` -> a `Report`;
- markdown, html, figures: the renderers;
- write: `write_run_report(run_dir)`, `write_comparison(run_dirs, out_dir)`, leaderboard.csv.

Nothing is imported here, so `evalkit --help` does not load matplotlib.
"""
