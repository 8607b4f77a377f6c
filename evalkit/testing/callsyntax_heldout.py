"""The held-out check of the call-syntax safety net: replies in syntaxes invented apart from the scanner's
development, and prose that names tools (benchmarks/data/callsyntax_heldout.jsonl, one JSON object a line:
id, kind "call" | "prose", tools (OpenAI tool objects), reply, expected_calls, note).

Each reply is scored as a run scores a reply whose server parsed no tool call (scoring.score, the text
being the whole reply), so the figures are the verdicts a user would see."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import EvalkitError
from ..schema import Case, Expect, ExpectedCall, Message, ToolDef
from ..scoring import Verdict, score


@dataclass(frozen=True)
class HeldOut:
    id: str
    kind: str  # call | prose
    expected: int  # how many calls the line expects (0: the writer left them open)
    verdict: Verdict

    @property
    def seen(self) -> bool:
        """A call reply read as a call attempt (malformed or recovered), never as an abstention."""
        return self.verdict.malformed or self.recovered  # (with no expected call, an abstention is "correct")

    @property
    def recovered(self) -> bool:
        return self.expected > 0 and self.verdict.intent_correct

    @property
    def plain(self) -> bool:
        return not self.verdict.malformed and self.verdict.failure_kind is None


def _expected_value(value: Any) -> Any:
    # An expected object is a literal, not a matcher (schema: a literal object is written {exact: ...}).
    return {"exact": value} if isinstance(value, dict) else value


def load(path: Path) -> list[HeldOut]:
    """Every line scored; a bad line raises EvalkitError naming the file, the line and the field."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            d = json.loads(line)
            kind = d["kind"]
            if kind not in ("call", "prose"):
                raise EvalkitError(f"{where}: kind must be 'call' or 'prose', not {kind!r}")
            offered = [ToolDef.model_validate(t) for t in d["tools"]]
            expected = (d.get("expected_calls") or []) if kind == "call" else []  # prose expects no call
            case = Case(id=str(d["id"]), messages=[Message(role="user", content="(held-out reply)")],
                        tool_defs=offered,
                        expect=Expect(calls=[ExpectedCall(name=c["name"], args={
                            k: _expected_value(v) for k, v in (c.get("arguments") or {}).items()})
                            for c in expected]))
            reply = d["reply"]
            if not isinstance(reply, str):
                raise EvalkitError(f"{where}: field 'reply' must be a string")
        except KeyError as exc:
            raise EvalkitError(f"{where}: field {exc.args[0]!r} is missing") from None
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{where}: not JSON ({exc.msg})") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise EvalkitError(f"{where}: field {field or '?'}: {err['msg']}") from None
        except (TypeError, AttributeError) as exc:
            raise EvalkitError(f"{where}: malformed line ({exc})") from None
        out.append(HeldOut(case.id, kind, len(expected), score(case, offered, [], reply)))
    return out
