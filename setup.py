"""Packaging that pyproject.toml cannot say alone: the built-in suites, their implementations and
fixtures live in the repository's top-level suites/ and are installed as evalkit/builtin_suites/
(found by evalkit.suites.builtin_dir). Every other package under evalkit/ is found automatically."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["evalkit", "evalkit.*"]) + ["evalkit.builtin_suites"],
    package_dir={"evalkit.builtin_suites": "suites"},
)
