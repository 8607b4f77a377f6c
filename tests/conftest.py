"""Shared fixtures: a real scripted OpenAI-compatible server, tiny suites on disk, and helpers that
run cases through the real runner (`plan` + `run_jobs` + the real openai client over HTTP).

Mock the clock, not the protocol: nothing here fakes the client or the wire.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterable

import pytest
import yaml

from evalkit.dispatch import run_jobs
from evalkit.jobs import Endpoint, RunContext, plan
from evalkit.schema import Sample, Settings
from evalkit.suites import LoadedSuite, read_suite
from evalkit.testing.scripted_server import Reply, ScriptedServer

# ---------------------------------------------------------------- the tools of the test suites


def _number_pair(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    "num1": {"type": "number", "description": "first number"},
                    "num2": {"type": "number", "description": "second number"},
                },
                "required": ["num1", "num2"],
                "additionalProperties": False,
            },
        },
    }


TOOLS: list[dict[str, Any]] = [
    _number_pair("compare_data", "Compare two numbers; returns true when the first is larger."),
    _number_pair("add_data", "Add two numbers."),
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            # No additionalProperties: false, so an extra argument is schema-valid and only the
            # case's `extra_args` decides.
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "say_hello",
            "description": "Say hello to someone by name.",
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
    },
]

COMPARE_EXPECT = {"calls": [{"name": "compare_data", "args": {"num1": 8.9, "num2": 8.11}}]}


def case(case_id: str, user: str | None = None, expect: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A suite case; the user message defaults to one naming the case id (responders route on it)."""
    return {
        "id": case_id,
        "messages": [{"role": "user", "content": user if user is not None else f"case:{case_id}"}],
        "expect": expect if expect is not None else COMPARE_EXPECT,
        **extra,
    }


def write_suite(
    directory: Path,
    cases: list[dict[str, Any]],
    name: str = "tiny",
    tools: list[dict[str, Any]] | None = None,
    filename: str | None = None,
) -> Path:
    """Write a suite as YAML (the format users write) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (filename or f"{name}.yaml")
    data = {"name": name, "description": f"test suite {name}", "tools": TOOLS if tools is None else tools, "cases": cases}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


TINY_CASES = [
    case("cmp", "Which is larger, 8.9 or 8.11?"),
    case("hello", "Say hello to Bob the Builder", {"calls": [{"name": "say_hello", "args": {"name": "Bob the Builder"}}]},
         tags=["greet"]),
    case("chat", "Tell me a joke", {"calls": []}, tags=["no_tool"]),
]


def tiny_responder(request: dict[str, Any]) -> Reply:
    """Right answers to TINY_CASES in whichever format the request uses."""
    text = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    if "8.9" in text:
        name, args = "compare_data", {"num1": 8.9, "num2": 8.11}
    elif "Bob" in text:
        name, args = "say_hello", {"name": "Bob the Builder"}
    else:
        return Reply(content="Why did the chicken cross the road?")
    return reply_for_format(request_format(request), [(name, args)])


# ---------------------------------------------------------------- replies in each format


def request_format(request: dict[str, Any]) -> str:
    """Which evalkit format built this request (what a responder needs to answer in kind)."""
    if "tools" in request:
        return "native"
    system = next((m.get("content") or "" for m in request["messages"] if m["role"] == "system"), "")
    if "[TOOL_REQUEST]" in system:
        return "default"
    if "composing functions" in system:
        return "pythonic"
    return "native"


def native_reply(calls: Iterable[tuple[str, Any]], content: str | None = None, split: int = 1) -> Reply:
    return Reply(content=content, tool_calls=[{"name": n, "arguments": a} for n, a in calls], split_arguments=split)


def default_reply(calls: Iterable[tuple[str, Any]]) -> Reply:
    blocks = [
        f"[TOOL_REQUEST]{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}[END_TOOL_REQUEST]" for n, a in calls
    ]
    return Reply(content="\n".join(blocks))


def pythonic_reply(calls: Iterable[tuple[str, Any]]) -> Reply:
    rendered = [f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls]
    return Reply(content=f"[{', '.join(rendered)}]")


def reply_for_format(fmt: str, calls: list[tuple[str, Any]]) -> Reply:
    return {"native": native_reply, "default": default_reply, "pythonic": pythonic_reply}[fmt](calls)


# ---------------------------------------------------------------- running through the real runner


def run_samples(
    base_url: str,
    loaded: LoadedSuite | Path,
    formats: list[str],
    *,
    repeats: int = 1,
    case_ids: list[str] | None = None,
    concurrency: int = 4,
    **settings: Any,
) -> list[Sample]:
    """Run the suite's cases through `run_jobs` against `base_url`; samples in finishing order."""
    if not isinstance(loaded, LoadedSuite):
        loaded = read_suite(loaded)
    jobs = plan([loaded], formats, repeats)
    if case_ids is not None:
        jobs = [j for j in jobs if j.case.id in case_ids]
    settings.setdefault("retries", 0)
    settings.setdefault("timeout_s", 10.0)
    ctx = RunContext(model="scripted-model", settings=Settings(repeats=repeats, **settings))
    samples: list[Sample] = []
    asyncio.run(run_jobs(jobs, [Endpoint(base_url, concurrency)], ctx, samples.append))
    assert len(samples) == len(jobs)
    return samples


def run_one(base_url: str, loaded: LoadedSuite | Path, case_id: str, fmt: str = "native", **settings: Any) -> Sample:
    """One case in one format through the real runner; returns its Sample."""
    (sample,) = run_samples(base_url, loaded, [fmt], case_ids=[case_id], concurrency=1, **settings)
    return sample


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def server():
    """A running scripted server; tests set its responder."""
    with ScriptedServer(model_id="scripted-model") as srv:
        yield srv


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """A three-case suite (one call, one call with a string, one no-call) as YAML in tmp_path."""
    return write_suite(tmp_path / "suites", TINY_CASES)


@pytest.fixture
def tiny_server():
    """A scripted server answering TINY_CASES correctly in every format."""
    with ScriptedServer(model_id="scripted-model", responder=tiny_responder) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _private_response_cache(tmp_path_factory, monkeypatch):
    """No test writes to the user's response cache (the model cache is shared on purpose)."""
    import evalkit.cache

    path = tmp_path_factory.mktemp("response-cache") / "responses.sqlite"
    monkeypatch.setattr(evalkit.cache, "default_path", lambda: path)
