"""Issue 16, suite loading limits: an alias bomb, a file that is not UTF-8 and a huge suite each end
in one line naming the file (or load), quickly and in bounded memory."""

from __future__ import annotations

import gc
import json
import time

import pytest
import yaml

from conftest import TOOLS, write_suite
from evalkit.cli import main
from evalkit.errors import SuiteError
from evalkit.suites import MAX_ALIAS_NODES, read_suite

pytestmark = pytest.mark.timeout(60)

LAUGHS = ["name: bomb", "tools: []", "cases:", "  - id: x", "    messages:", "      - role: user", "        content: hi",
          '        a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
LAUGHS += [f"        {b}: &{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
LAUGHS += ["    expect: {calls: []}"]
BOMB = "\n".join(LAUGHS) + "\n"
BOMB_LINE = "field '(yaml)': YAML aliases expand to 490,329,036 more nodes, over the limit of 1,000,000 (an alias bomb?)"


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def cli_run(tmp_path, suite) -> int:
    # The suite is checked before any server is contacted: port 9 on loopback is never used.
    return main(["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--suite", str(suite),
                 "--out", str(tmp_path / "runs"), "--quiet"])


def test_a_billion_laughs_fails_fast_in_one_line(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 1100
    start = time.monotonic()
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert str(info.value) == f"{path}: {BOMB_LINE}"
    assert time.monotonic() - start < 2.0
    assert cli_run(tmp_path, path) == 2
    assert one_line(capsys.readouterr().err).endswith(f"{path}: {BOMB_LINE}")
    assert not (tmp_path / "runs").exists()


def test_a_recursive_alias_is_one_line(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\ntools: []\ncases:\n  - &case {id: x, messages: [{role: user, content: hi, me: *case}], expect: {calls: []}}\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert str(info.value) == f"{path}: field '(yaml)': a YAML alias refers to a node that contains it; a suite cannot be recursive"


def test_ordinary_anchors_and_aliases_still_load(tmp_path):
    # The first case anchors its messages and expectation; 299 more cases reuse them.
    text = yaml.safe_dump({"name": "shared", "tools": TOOLS, "cases": []}, sort_keys=False).replace("cases: []\n", "cases:\n")
    text += "  - {id: c0, messages: &ask [{role: user, content: 8.9 or 8.11?}],\n"
    text += "     expect: &expect {calls: [{name: compare_data, args: {num1: 8.9, num2: 8.11}}]}}\n"
    text += "".join(f"  - {{id: c{i}, messages: *ask, expect: *expect}}\n" for i in range(1, 300))
    path = tmp_path / "shared.yaml"
    path.write_text(text)
    loaded = read_suite(path)
    assert len(loaded.suite.cases) == 300
    assert loaded.suite.cases[299].expect.calls[0].args == {"num1": 8.9, "num2": 8.11}
    assert loaded.suite.cases[299].messages[0].content == "8.9 or 8.11?"


def test_the_alias_limit_is_a_setting(tmp_path, monkeypatch):
    import evalkit.suites as suites

    path = tmp_path / "small-bomb.yaml"
    path.write_text("\n".join(LAUGHS[:10]) + "\n    expect: {calls: []}\n")  # a, b, c: 9 + 81 + 729 ...
    read_suite(path)
    monkeypatch.setattr(suites, "MAX_ALIAS_NODES", 50)
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert "over the limit of 50 (an alias bomb?)" in str(info.value)
    assert MAX_ALIAS_NODES == 1_000_000


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl"])
def test_a_suite_that_is_not_utf8_is_one_line(tmp_path, capsys, suffix):
    path = tmp_path / f"latin1{suffix}"
    body = "name: café\ncases: []\n" if suffix == ".yaml" else '{"name": "café"}\n'
    path.write_bytes(body.encode("latin-1"))
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    offset = body.index("é")
    assert str(info.value) == f"{path}: field '(encoding)': not UTF-8 text: byte 0xe9 at offset {offset} is not UTF-8"
    assert cli_run(tmp_path, path) == 2
    assert one_line(capsys.readouterr().err).endswith(str(info.value))


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = write_suite(tmp_path, [{"id": "a", "messages": [{"role": "user", "content": "hi"}], "expect": {"calls": []}}])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_suite(path).suite.cases[0].id == "a"
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}],
                                                   "expect": {"calls": []}}).encode() + b"\n")
    assert read_suite(jsonl).suite.cases[0].id == "a"


@pytest.mark.parametrize("line,problem", [
    ('{"id": "a", "x": %s}' % ("9" * 5000), "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"),
    ('{"id": "a", "x": %s}' % ("[" * 10_000 + "]" * 10_000), "not valid JSON: nested too deeply"),
])
def test_a_hostile_jsonl_line_is_named_by_number(tmp_path, line, problem):
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"name": "hostile"}) + "\n" + line + "\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert str(info.value) == f"{path}: case 'line 2': field '(json)': {problem}"


def test_deep_yaml_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ntools: []\ncases:\n  - id: x\n    messages: [{role: user, content: hi, x: "
                    + "[" * 10_000 + "]" * 10_000 + "}]\n    expect: {calls: []}\n")
    with pytest.raises(SuiteError) as info:
        read_suite(path)
    assert info.value.field == "(yaml)" and "not valid YAML" in info.value.problem


@pytest.mark.parametrize("suffix", [".yaml", ".jsonl"])
def test_a_large_suite_loads_in_bounded_time_and_leaves_gc_on(tmp_path, suffix):
    cases = [{"id": f"case-{i:05d}", "messages": [{"role": "user", "content": f"Larger: {i}.9 or {i}.11?"}],
              "expect": {"calls": [{"name": "compare_data", "args": {"num1": i + 0.9, "num2": i + 0.11}}]}}
             for i in range(10_000)]
    if suffix == ".yaml":  # flow style, written directly: yaml.safe_dump of 10k cases is slow itself
        path = tmp_path / "large.yaml"
        path.write_text(yaml.safe_dump({"name": "large", "tools": TOOLS}) + "cases:\n"
                        + "".join(f"  - {json.dumps(c)}\n" for c in cases))
    else:
        path = tmp_path / "large.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in [{"name": "large", "tools": TOOLS}, *cases]) + "\n")
    start = time.process_time()
    loaded = read_suite(path)
    assert len(loaded.suite.cases) == 10_000
    assert time.process_time() - start < 10.0  # 100k cases: YAML 142 s -> 18 s, JSONL 6.2 s -> 3.5 s
    assert gc.isenabled()
