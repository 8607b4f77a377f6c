"""Packaging that pyproject.toml cannot say alone: the built-in suites, their implementations and
fixtures live in the repository's top-level suites/ and are installed as evalkit/builtin_suites/
(found by evalkit.suites.builtin_dir); the published JSON Schemas live in schemas/ and are installed
as evalkit/schemas/ (evalkit.published.shipped_dir), so a suite's `$schema=../schemas/...` line
resolves in both places. Every other package under evalkit/ is found automatically."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["evalkit", "evalkit.*"]) + ["evalkit.builtin_suites", "evalkit.schemas"],
    package_dir={"evalkit.builtin_suites": "suites", "evalkit.schemas": "schemas"},
)
