"""The JSON Schemas evalkit publishes, generated from the pydantic models of evalkit/schema.py.

`evalkit schema NAME` prints one. The files live in the repository's top-level schemas/ and are
installed as evalkit/schemas/ (as suites/ is installed as evalkit/builtin_suites/), so the built-in
suites' first line, `# yaml-language-server: $schema=../schemas/suite.schema.json`, points at the
suite schema both in a checkout and in an installed wheel. tests/test_schemas.py keeps the files
equal to what this module generates (regenerate them with `evalkit schema --out schemas`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .schema import Header, ProbeResult, Results, RunConfig, Sample, Suite, Sweep

# One entry per published file format: name -> (model, what the file is).
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "suite": (Suite, "An evalkit suite file (YAML or JSON): tools, cases and what each case expects."),
    "sample": (Sample, "One line of a run directory's samples.jsonl: one case asked once in one format."),
    "results": (Results, "A run directory's results.json: the aggregates of its samples."),
    "header": (Header, "A run directory's header.json: what was run, against what, with which settings."),
    "sweep": (Sweep, "A sweep directory's sweep.json: the models of one `evalkit run` and their run directories."),
    "probe": (ProbeResult, "probe.json (`evalkit probe --json`, `run --probe`): the server's capability checks."),
    "config": (RunConfig, "`evalkit run --config FILE.yaml`: the models a sweep compares, each with its endpoint and options."),
}
DRAFT = "https://json-schema.org/draft/2020-12/schema"
FILE = "{name}.schema.json"
CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "schemas"
PACKAGED_DIR = Path(__file__).resolve().parent / "schemas"


def json_schema(name: str) -> dict[str, Any]:
    model, description = SCHEMAS[name]
    schema = model.model_json_schema(mode="validation")
    return {"$schema": DRAFT, "title": f"evalkit {name}", "description": description,
            **{k: v for k, v in schema.items() if k not in ("title", "description")}}


def schema_text(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, ensure_ascii=False) + "\n"


def shipped_dir() -> Path:
    """Where the schema files are: installed with evalkit, or in the checkout."""
    return PACKAGED_DIR if PACKAGED_DIR.is_dir() else CHECKOUT_DIR


def shipped_path(name: str) -> Path:
    return shipped_dir() / FILE.format(name=name)
