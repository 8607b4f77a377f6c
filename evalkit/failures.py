"""THE failure-kind table: why a sample's `call_correct` is false (docs/format.md section 3).

Scoring returns one of these keys as `failure_kind` with the specifics in `failure_detail`;
every report prints the kind by its `label` and explains it with its `meaning`. The schema's
`FailureKind` is built from `KEYS`, so a new kind is one entry here. This module imports
nothing of evalkit's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    key: str  # what samples.jsonl stores
    label: str  # a short name for tables and headings
    meaning: str  # what it means, in a person's words


FAILURES: dict[str, Failure] = {
    f.key: f
    for f in (
        Failure("malformed", "malformed call", "the reply tried to call a tool, but the call could not be parsed"),
        Failure("server_parse_lost", "call lost by the server",
                "the model wrote a clean call in its own syntax, but the server's parser did not return it"),
        Failure("hallucinated_tool", "hallucinated tool", "it called a tool that was not offered"),
        Failure("wrong_tool", "wrong tool", "it called a different tool than the task needs"),
        Failure("wrong_value", "wrong value", "the right tool, but an argument has the wrong value"),
        Failure("wrong_count", "wrong number of calls", "it made a different number of calls than the task needs"),
        Failure("invalid_args", "invalid arguments", "the arguments do not satisfy the tool's JSON Schema"),
        Failure("invented_argument", "invented argument", "a call carries a value the user never gave"),
        Failure("called_when_should_not", "called when it should not",
                "it called a tool although a plain-text reply was expected"),
        Failure("did_not_call", "did not call", "it answered in text instead of calling a tool"),
        Failure("final_answer", "wrong final answer", "the tool calls were right, but the final answer was not"),
        Failure("round_limit", "round limit", "it never gave a final answer within the allowed rounds"),
        Failure("error", "server error",
                "the request failed (timeout, HTTP error) after retries; not counted in accuracy"),
        # Only read from files: a kind this version does not know (written by another version).
        Failure("other", "other", "the reply did not match the expected calls"),
    )
}

KEYS: tuple[str, ...] = tuple(FAILURES)


def label(key: str) -> str:
    return FAILURES[key].label


def meaning(key: str) -> str:
    return FAILURES[key].meaning


def from_legacy(text: str) -> tuple[str, str | None]:
    """(kind, detail) from an older run's single `failure` string, "kind: detail" or "kind"."""
    key, _, detail = text.partition(":")
    key, detail = key.strip(), detail.strip()
    if key not in FAILURES:
        return "other", text.strip() or None
    return key, detail or None
