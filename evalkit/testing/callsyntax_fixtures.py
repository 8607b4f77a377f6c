"""The call-syntax fixtures (tests/fixtures/callsyntax/*.jsonl) and how one is judged, shared by
tests/test_callsyntax.py and benchmarks/bench_callsyntax.py so both count the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..callsyntax import Scan, scan

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "callsyntax"
CALL_KINDS = ("call", "parallel", "reasoning")


@dataclass(frozen=True)
class Fixture:
    id: str
    family: str
    kind: str  # call | parallel | reasoning | broken | plain
    source: str
    text: str
    calls: list[dict[str, Any]] | None
    location: str
    tools: dict[str, Any] | None
    syntax: str  # the family the scanner should name (usually `family`)
    model: str


def load(directory: Path = FIXTURES) -> list[Fixture]:
    shared = json.loads((directory / "tools.json").read_text(encoding="utf-8"))
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                d = json.loads(line)
                # No `tools` key: the shared tools.json was offered; `"tools": null`: unknown.
                tools = d["tools"] if "tools" in d else shared
                out.append(Fixture(d["id"], d["family"], d["kind"], d["source"], d["text"], d.get("calls"),
                                   d.get("location", "answer"), tools, d.get("syntax", d["family"]),
                                   d.get("model", "")))
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path.name} line {number}: bad fixture ({exc})") from None
    return out


@dataclass(frozen=True)
class Outcome:
    recognised: bool  # an attempt where it should be (call kinds), flagged as broken (broken), none (plain)
    exact: bool | None  # the calls recovered equal the expected ones (None: nothing expected)
    family_ok: bool | None  # the attempt is named after the right family
    detail: str


def _calls(found: list[Any]) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in found]


def judge(f: Fixture, result: Scan) -> Outcome:
    """How the scanner did on one fixture."""
    answer, reasoning = result.where("answer"), result.where("reasoning")
    if f.kind == "plain":
        ok = not result.attempts
        return Outcome(ok, None, None, "" if ok else f"invented {[(a.family, a.broken) for a in result.attempts]}")
    if f.kind == "broken":
        flagged = any(not a.clean for a in answer)
        exact = None if f.calls is None else _calls(result.recovered) == f.calls
        return Outcome(flagged, exact, None, "" if flagged else f"not flagged: {[(a.family, a.broken) for a in answer]}")
    where = reasoning if f.location == "reasoning" else answer
    other = answer if f.location == "reasoning" else []
    recognised = bool(where) and not other
    got = [c for a in where for c in a.good_calls]
    exact = recognised and all(a.clean for a in where) and _calls(got) == f.calls
    family_ok = bool(where) and all(a.family == f.syntax for a in where)
    detail = "" if exact else f"got {[(a.family, a.location, a.broken, _calls(list(a.calls))) for a in result.attempts]}"
    return Outcome(recognised, exact, family_ok, detail)


def judge_with(f: Fixture, recognise: Callable[[str, set[str] | None], list[str]],
               recover: Callable[[str, set[str] | None], list[Any]]) -> Outcome:
    """The same questions asked of an older recogniser (recognise, recover): evalkit/recovery.py before
    issue 11, which benchmarks/bench_callsyntax.py reads from git history."""
    names = set(f.tools) if f.tools else None
    seen = bool(recognise(f.text, names))
    if f.kind == "plain":
        return Outcome(not seen, None, None, "")
    if f.kind == "broken":
        return Outcome(seen, None, None, "")
    exact = seen and _calls(recover(f.text, names)) == f.calls
    return Outcome(seen, exact, None, "")


def run(f: Fixture) -> Outcome:
    return judge(f, scan(f.text, f.tools))
