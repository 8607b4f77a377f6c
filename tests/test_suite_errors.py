"""Broken suite files: a SuiteError naming file, case and field; one line (no traceback) via the CLI."""

from __future__ import annotations

import json

import pytest

from conftest import TOOLS, write_suite
from evalkit.cli import main
from evalkit.errors import EvalkitError, SuiteError
from evalkit.suites import find_suite, read_suite

GOOD_CASE = {"id": "ok", "messages": [{"role": "user", "content": "8.9 or 8.11?"}],
             "expect": {"calls": [{"name": "compare_data", "args": {"num1": 8.9, "num2": 8.11}}]}}


def broken_case(**changes):
    case = {"id": "broken-one", "messages": [{"role": "user", "content": "hi"}],
            "expect": {"calls": [{"name": "compare_data", "args": {"num1": 1, "num2": 2}}]}}
    case.update(changes)
    return {k: v for k, v in case.items() if v is not None}


# (description, case, expected case id in the message, expected field, words of the problem)
BROKEN_CASES = [
    ("missing expect", broken_case(expect=None), "broken-one", "expect", "required"),
    ("typo expct", {**broken_case(expect=None), "expct": {"calls": []}}, "broken-one", "expct", "unknown field"),
    ("unknown field next to a good one", broken_case(tgas=["x"]), "broken-one", "tgas", "unknown field"),
    ("typo inside expect", broken_case(expect={"calls": [], "oder": "any"}), "broken-one", "expect.oder", "unknown field"),
    ("typo in an expected call", broken_case(expect={"calls": [{"name": "compare_data", "arg": {}}]}), "broken-one",
     "expect.calls.0.arg", "unknown field"),
    ("call to a tool not declared", broken_case(expect={"calls": [{"name": "delete_all", "args": {}}]}), "broken-one",
     "expect.calls.0.name", "delete_all"),
    ("call to a declared tool the case does not offer", broken_case(tools=["get_weather"]), "broken-one",
     "expect.calls.0.name", "compare_data"),
    ("case tools naming an undeclared tool", broken_case(tools=["nope"]), "broken-one", "tools", "nope"),
    ("bad regex", broken_case(expect={"calls": [{"name": "compare_data", "args": {"num1": {"regex": "([0-"}}}]}),
     "broken-one", "expect.calls.0.args", "regex"),
    ("two matcher operators", broken_case(
        expect={"calls": [{"name": "compare_data", "args": {"num1": {"exact": 1, "approx": 1}}}]}),
     "broken-one", "expect.calls.0.args", "num1"),
    ("tol without approx", broken_case(expect={"calls": [{"name": "compare_data", "args": {"num1": {"one_of": [1], "tol": 1}}}]}),
     "broken-one", "expect.calls.0.args", "tol"),
    ("bad order", broken_case(expect={"calls": [], "order": "sorted"}), "broken-one", "expect.order", ""),
    ("no messages", broken_case(messages=[]), "broken-one", "messages", "at least one"),
    ("bad role", broken_case(messages=[{"role": "robot", "content": "hi"}]), "broken-one", "messages.0.role", ""),
    ("agent without implementations", broken_case(mode="agent"), "broken-one", "mode", "implementations"),
    ("case without id", broken_case(id=None), "#2", "id", "required"),
]


@pytest.mark.parametrize("what,bad,case_id,field,words", BROKEN_CASES, ids=[c[0] for c in BROKEN_CASES])
def test_broken_case_names_file_case_and_field(tmp_path, what, bad, case_id, field, words):
    path = write_suite(tmp_path, [GOOD_CASE, bad], name="broken")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    error = info.value
    assert (error.path, error.case_id, error.field) == (str(path), case_id, field), str(error)
    assert words.lower() in error.problem.lower()
    message = str(error)
    assert str(path) in message and repr(case_id) in message and repr(field) in message
    assert "\n" not in message


def test_duplicate_case_ids(tmp_path):
    path = write_suite(tmp_path, [GOOD_CASE, {**GOOD_CASE, "messages": [{"role": "user", "content": "again"}]}])
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert info.value.case_id == "ok" and info.value.field == "id" and "duplicate" in info.value.problem


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncases:\n  - id: a\n    messages: [{role: user, content: hi}\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert info.value.field == "(yaml)" and "line" in info.value.problem and str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "", "42\n"])
def test_not_a_mapping(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert info.value.field == "(root)"


def test_jsonl_bad_line_is_named_by_number(tmp_path):
    path = tmp_path / "big.jsonl"
    lines = [
        json.dumps({"name": "big", "tools": TOOLS}),
        json.dumps(GOOD_CASE),
        "",
        json.dumps({**GOOD_CASE, "id": "ok2"}),
        '{"id": "broken", "messages": [}',
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert info.value.case_id == "line 5" and "JSON" in info.value.problem


def test_jsonl_valid_suite_loads_and_bad_case_named(tmp_path):
    path = tmp_path / "big.jsonl"
    rows = [{"name": "big", "tools": TOOLS}, GOOD_CASE, {**GOOD_CASE, "id": "ok2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = read_suite(path)
    assert [c.id for c in loaded.suite.cases] == ["ok", "ok2"] and loaded.suite.name == "big"
    rows.append({**GOOD_CASE, "id": "typo", "expct": {}})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert (info.value.case_id, info.value.field) == ("typo", "expct")


def test_missing_suite_file_is_a_user_error(tmp_path):
    with pytest.raises(EvalkitError) as info:
        find_suite(str(tmp_path / "missing.yaml"))
    assert "missing.yaml" in str(info.value)
    with pytest.raises(EvalkitError) as info:
        find_suite("no-such-suite-name")
    assert "no-such-suite-name" in str(info.value) and "arithmetic" in str(info.value)


def test_a_good_suite_loads_with_its_sha256(tmp_path):
    import hashlib

    path = write_suite(tmp_path, [GOOD_CASE])
    loaded = read_suite(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.suite.cases[0].expect.calls[0].args == {"num1": 8.9, "num2": 8.11}


# ---------------------------------------------------------------- through the command line


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("what,bad,case_id,field,words", BROKEN_CASES[:3] + BROKEN_CASES[5:6] + BROKEN_CASES[8:9],
                         ids=["missing-expect", "typo-expct", "unknown-field", "not-offered", "bad-regex"])
def test_cli_run_reports_a_broken_suite_in_one_line(tmp_path, capsys, what, bad, case_id, field, words):
    path = write_suite(tmp_path, [GOOD_CASE, bad], name="broken")
    # The suite is checked before any server is contacted: port 9 on loopback is never used.
    code = main(["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--suite", str(path),
                 "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert str(path) in line and repr(case_id) in line and repr(field) in line
    assert not (tmp_path / "runs").exists()  # nothing half-made


def test_cli_suites_reports_a_broken_suite_in_one_line(tmp_path, capsys):
    write_suite(tmp_path, [GOOD_CASE], name="good")
    bad = write_suite(tmp_path, [{**GOOD_CASE, "expct": {}}], name="zbad")
    code = main(["suites", "--dir", str(tmp_path)])
    assert code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "'expct'" in line


def test_cli_bad_yaml_is_one_line(tmp_path, capsys):
    """(The console script itself is driven in a subprocess by test_run_cli.py.)"""
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    code = main(["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--suite", str(path),
                 "--out", str(tmp_path / "runs"), "--quiet"])
    assert code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(path) in line and "YAML" in line


def test_builtin_suite_name_wins_over_an_imported_one(tmp_path, monkeypatch):
    """`--suite parallel` is the built-in suite even when suites/bfcl/parallel.jsonl exists."""
    import evalkit.suites as suites_module

    root = tmp_path / "suites"
    (root / "bfcl").mkdir(parents=True)
    top = root / "parallel.yaml"
    top.write_text(
        "name: parallel\ntools: []\ncases:\n"
        "  - {id: a, messages: [{role: user, content: hi}], expect: {calls: []}}\n"
    )
    (root / "bfcl" / "parallel.jsonl").write_text(
        '{"name": "bfcl_parallel"}\n{"id": "b", "messages": [{"role": "user", "content": "x"}], "expect": {"calls": []}}\n'
    )
    monkeypatch.setattr(suites_module, "builtin_dir", lambda: root)
    assert suites_module.find_suite("parallel").path == top
    assert suites_module.find_suite("bfcl_parallel").suite.name == "bfcl_parallel"
