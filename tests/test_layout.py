"""The layout's promises: imports in one direction, and one table per concept that everything
else derives from (metrics, matchers, failure kinds)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

import evalkit
from evalkit import failures, matchers, metrics
from evalkit.errors import SuiteError
from evalkit.schema import Aggregate, ExpectedCall, FailureKind, Sample
from evalkit.suites import read_suite

PACKAGE = Path(evalkit.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """evalkit module -> the evalkit modules it imports, at any level (functions included)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            for target in targets:
                while target and target not in paths:  # `import evalkit.engine.pull` names a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_import_graph_has_no_cycles():
    graph = import_graph()
    assert len(graph) > 30 and "evalkit.scoring" in graph["evalkit.jobs"]  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_tables_import_nothing_of_evalkit():
    graph = import_graph()
    assert graph["evalkit.failures"] == set() and graph["evalkit.matchers"] == set()


def test_report_renderers_are_imported_by_write_only():
    graph = import_graph()
    renderers = {"evalkit.report.markdown", "evalkit.report.html", "evalkit.report.figures"}
    importers = {m for m, targets in graph.items() if targets & renderers}
    assert importers == {"evalkit.report.write"}


# ---------------------------------------------------------------- metrics


def test_every_metric_is_a_field_of_aggregate():
    keys = [m.key for m in metrics.METRICS]
    assert len(keys) == len(set(keys))
    assert set(keys) <= set(Aggregate.model_fields)
    # ... and every number of Aggregate is a metric (identity fields aside)
    assert set(Aggregate.model_fields) - set(keys) == {"model", "format", "suite", "tag", "distractors"}


def test_csv_columns_come_from_the_metric_table():
    from evalkit.report.write import leaderboard_csv

    header = leaderboard_csv([]).splitlines()[0].split(",")
    assert header[:3] == ["run_id", "model", "format"]
    assert header[3:] == [c for m in metrics.METRICS for c in m.csv_columns]


# ---------------------------------------------------------------- failure kinds


def test_failure_kind_type_is_the_table():
    assert typing.get_args(FailureKind) == failures.KEYS
    contract = {"malformed", "server_parse_lost", "hallucinated_tool", "wrong_tool", "wrong_value", "wrong_count",
                "invalid_args", "invented_argument", "called_when_should_not", "did_not_call", "final_answer",
                "round_limit"}
    assert contract <= set(failures.KEYS)
    labels = [f.label for f in failures.FAILURES.values()]
    assert len(labels) == len(set(labels))  # one label per kind


def sample(**fields) -> Sample:
    return Sample.model_validate({"suite": "s", "case_id": "c", "format": "native", "repeat": 0, "model": "m", **fields})


def test_old_failure_strings_are_read_into_kind_and_detail():
    old = sample(failure="wrong_value: compare_data: num1=9.9, expected 9.11")
    assert (old.failure_kind, old.failure_detail) == ("wrong_value", "compare_data: num1=9.9, expected 9.11")
    assert (sample(failure="did_not_call").failure_kind, sample(failure="did_not_call").failure_detail) == (
        "did_not_call", None)
    assert sample(failure="error").failure_kind == "error"
    odd = sample(failure="something new: x")
    assert (odd.failure_kind, odd.failure_detail) == ("other", "something new: x")
    # new samples write the two fields and no `failure`
    written = sample(failure_kind="wrong_tool", failure_detail="called 'a', expected 'b'").model_dump()
    assert "failure" not in written and written["failure_kind"] == "wrong_tool"
    with pytest.raises(ValueError):
        sample(failure_kind="not_a_kind")


# ---------------------------------------------------------------- matchers


@pytest.mark.parametrize("value,text", [
    ({"loose": "Los Angeles, CA"}, '≈"Los Angeles, CA"'),
    ({"one_of": [{"loose": "NYC"}, {"exact": 3}]}, '≈"NYC" | exactly 3'),
    ({"approx": 3.14, "tol": 0.01}, "~3.14 (tol 0.01)"),
    ({"regex": "a+"}, "/a+/"),
    ({"optional": True}, "anything (optional)"),
    ({"unit": {"loose": "c", "optional": True}}, '{"unit": ≈"c" (optional)}'),
    ([1, {"exact": "x"}], '[1, exactly "x"]'),
    ("Paris", '"Paris"'),
])
def test_matchers_describe_themselves(value, text):
    assert matchers.describe_value(value).removeprefix("one of ") == text


def test_matcher_keys_come_from_the_table():
    assert matchers.OPERATORS == set(matchers.MATCHERS)
    assert matchers.KEYS == set(matchers.MATCHERS) | {"tol", "optional"}


def test_mismatch_detail_shows_matchers_not_dict_reprs():
    from evalkit.matching import args_mismatch

    want = ExpectedCall(name="w", args={"city": {"loose": "New York City"}})
    assert args_mismatch(want, {"city": "Boston"}, False) == 'w: city="Boston", expected ≈"New York City"'


def test_schema_validates_matchers_by_the_table(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntools: [{type: function, function: {name: w}}]\n"
        "cases: [{id: c, messages: [{role: user, content: hi}], expect: {calls: [{name: w, args: {x: {one_of: 3}}}]}}]\n"
    )
    with pytest.raises(SuiteError, match="'one_of' must be a list"):
        read_suite(path)
