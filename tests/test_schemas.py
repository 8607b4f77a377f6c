"""The published JSON Schemas: generated from evalkit/schema.py, shipped as files equal to what is
generated, installed in the wheel; every built-in suite names the suite schema in its first line and
validates against it, an invalid suite does not; real run files validate against theirs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from evalkit import published
from evalkit.cli import main
from evalkit.suites import read_suite, suite_digest, suite_paths

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "reports" / "measured"
BUILTIN = [p for p in suite_paths(ROOT / "suites") if p.suffix in (".yaml", ".yml") and "bfcl" not in p.parts]


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(published.shipped_path(name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", list(published.SCHEMAS))
def test_shipped_file_is_the_generated_schema(name, capsys):
    assert main(["schema", name]) == 0
    printed = capsys.readouterr().out
    assert printed == published.shipped_path(name).read_text(encoding="utf-8"), \
        f"schemas/{name}.schema.json is stale: regenerate with `evalkit schema --out schemas`"
    assert json.loads(printed)["$schema"] == published.DRAFT


@pytest.mark.parametrize("path", BUILTIN, ids=[p.stem for p in BUILTIN])
def test_builtin_suite_names_and_satisfies_the_suite_schema(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    target = (path.parent / first.split("$schema=", 1)[1]).resolve()
    assert target == published.shipped_path("suite").resolve()
    errors = list(validator("suite").iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:3]]


def test_enough_builtin_suites_are_checked():
    assert len(BUILTIN) >= 15 and any(p.parent.name == "mcp" for p in BUILTIN)


@pytest.mark.parametrize("change, where", [
    (lambda s: s.pop("cases"), "cases"),  # required
    (lambda s: s["cases"][0].update(expected={"calls": []}), "expected"),  # a typo'd field
    (lambda s: s["cases"][0].update(mode="chat"), "mode"),  # not one of single, agent
    (lambda s: s["cases"][0].update(messages="hello"), "messages"),  # a list of messages
    (lambda s: s["cases"][0]["expect"]["calls"][0].pop("name"), "name"),
])
def test_an_invalid_suite_does_not_validate(change, where):
    suite = yaml.safe_load((ROOT / "suites" / "arithmetic.yaml").read_text(encoding="utf-8"))
    assert not list(validator("suite").iter_errors(suite))
    change(suite)
    errors = list(validator("suite").iter_errors(suite))
    assert errors and any(where in e.message or where in map(str, e.absolute_path) for e in errors), \
        [e.message for e in errors]


def test_run_files_satisfy_their_schemas():
    runs = sorted(p.parent for p in MEASURED.rglob("header.json"))
    assert len(runs) >= 10
    for run in runs:
        assert not list(validator("header").iter_errors(json.loads((run / "header.json").read_text())))
        assert not list(validator("results").iter_errors(json.loads((run / "results.json").read_text())))
        sample = validator("sample")
        for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines()[:40]:
            errors = list(sample.iter_errors(json.loads(line)))
            assert not errors, (run.name, errors[0].message)
    sweep = next(MEASURED.glob("sweep-*/sweep.json"))
    assert not list(validator("sweep").iter_errors(json.loads(sweep.read_text())))
    bad = json.loads((runs[0] / "samples.jsonl").read_text(encoding="utf-8").splitlines()[0])
    bad["call_correct"] = "yes"
    assert list(validator("sample").iter_errors(bad))


def test_the_editor_line_does_not_change_a_suites_identity(tmp_path):
    """Runs made before the built-in suites gained the line still find their suite (rescore, reports)."""
    text = (ROOT / "suites" / "greetings.yaml").read_bytes()
    without = text.split(b"\n", 1)[1]
    assert suite_digest(text) == suite_digest(without)
    assert suite_digest(b"# another comment\n" + without) != suite_digest(without)
    (tmp_path / "greetings.yaml").write_bytes(without)
    assert read_suite(tmp_path / "greetings.yaml").sha256 == read_suite(ROOT / "suites" / "greetings.yaml").sha256


def test_out_writes_every_schema(tmp_path, capsys):
    assert main(["schema", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.schema.json" for n in published.SCHEMAS)
    assert main(["schema"]) == 2
    assert "name the format: evalkit schema suite|sample|results|header" in capsys.readouterr().err
    assert main(["schema", "suit"]) == 2
    assert "did you mean suite?" in capsys.readouterr().err


def test_the_package_ships_the_schemas_beside_the_suites(tmp_path):
    """As installed (setuptools' build_py, what a wheel holds), a built-in suite's
    `$schema=../schemas/suite.schema.json` resolves to the shipped suite schema."""
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    package = tmp_path / "evalkit"
    for name in published.SCHEMAS:
        assert (package / "schemas" / f"{name}.schema.json").is_file(), name
    assert (package / "view" / "page.html").is_file()
    for suite in (package / "builtin_suites" / "arithmetic.yaml", package / "builtin_suites" / "mcp" / "mcp_time.yaml"):
        first = suite.read_text(encoding="utf-8").splitlines()[0]
        target = suite.parent / first.split("$schema=", 1)[1]
        assert target.resolve() == (package / "schemas" / "suite.schema.json").resolve() and target.is_file()


def test_the_documented_config_file_satisfies_the_config_schema():
    text = (ROOT / "docs" / "own-server.md").read_text(encoding="utf-8")
    block = next(b for b in text.split("```yaml\n")[1:] if b.lstrip().startswith("# models.yaml"))
    config = yaml.safe_load(block.split("```", 1)[0])
    assert not list(validator("config").iter_errors(config))
    config["options"][0]["headrs"] = {"X-Team": "evals"}  # the typo the docs show evalkit naming
    assert list(validator("config").iter_errors(config))
