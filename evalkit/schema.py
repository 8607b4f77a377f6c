"""The one typed schema behind every evalkit file: suites, samples, headers and results.

Field names follow ../shared/CONTRACT.md; new fields are optional so old files keep loading.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import failures
from .matchers import is_matcher, problem

# Why `call_correct` is false: a key of the failure table (evalkit/failures.py).
FailureKind = Literal[failures.KEYS]  # type: ignore[valid-type]


class Strict(BaseModel):
    # Typos in suite files must be reported, not silently ignored.
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- suites


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: FunctionDef


class ExpectedCall(Strict):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    extra_args: Literal["allow", "forbid"] | None = None

    @field_validator("args")
    @classmethod
    def _matchers_well_formed(cls, args: dict[str, Any]) -> dict[str, Any]:
        for key, value in args.items():
            if is_matcher(value) and (why := problem(value)):
                raise ValueError(f"argument {key!r}: {why}")
        return args


class FinalAnswer(Strict):
    contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    number: float | None = None
    tol: float = 1e-6


class Expect(Strict):
    calls: list[ExpectedCall]
    order: Literal["any", "strict"] = "any"
    extra_args: Literal["allow", "forbid"] = "forbid"
    final_answer: FinalAnswer | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None


class Case(Strict):
    id: str
    messages: list[Message]
    tools: list[str] | None = None
    # Self-contained cases (imported benchmarks such as BFCL) carry their own definitions, since
    # two entries may declare different functions under one name.
    tool_defs: list[ToolDef] | None = None
    expect: Expect
    tags: list[str] = Field(default_factory=list)
    mode: Literal["single", "agent"] = "single"
    max_rounds: int = Field(default=5, ge=1, le=50)

    @field_validator("messages")
    @classmethod
    def _has_user_turn(cls, messages: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("must hold at least one user message")
        return messages


class Suite(Strict):
    name: str
    description: str = ""
    tools: list[ToolDef] = Field(default_factory=list)
    implementations: str | None = None
    cases: list[Case]

    @model_validator(mode="after")
    def _ids_unique(self) -> "Suite":
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"duplicate case id {case.id!r}")
            seen.add(case.id)
        return self

    def tool(self, name: str) -> ToolDef | None:
        return next((t for t in self.tools if t.function.name == name), None)

    def tools_for(self, case: Case) -> list[ToolDef]:
        if case.tool_defs is not None:
            return list(case.tool_defs)
        if case.tools is None:
            return list(self.tools)
        return [t for t in self.tools if t.function.name in case.tools]


# ---------------------------------------------------------------- replies and samples


class ToolCall(BaseModel):
    """A call as parsed from a reply. Unparseable ones carry `parse_error` instead of raising."""

    name: str | None = None
    arguments: dict[str, Any] | None = None
    raw_arguments: str | None = None
    parse_error: str | None = None
    id: str | None = None


class Round(BaseModel):
    """One request/reply exchange of an agent case, with the tool results that followed it."""

    request: dict[str, Any]
    raw: dict[str, Any]
    calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[dict[str, Any]] = Field(default_factory=list)


class Sample(BaseModel):
    model_config = ConfigDict(extra="allow")

    suite: str
    case_id: str
    format: str
    repeat: int
    model: str
    tags: list[str] = Field(default_factory=list)
    mode: str = "single"
    request: dict[str, Any] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict)
    calls: list[ToolCall] = Field(default_factory=list)
    expected_calls: int = 0
    # verdicts
    malformed: bool = False
    hallucinated_tool: bool = False
    args_valid: bool | None = None
    call_correct: bool = False
    intent_correct: bool = False
    error: str | None = None
    failure_kind: FailureKind | None = None  # why call_correct is false (evalkit/failures.py)
    failure_detail: str | None = None  # the specifics, in words a person reads
    syntax: str | None = None  # which family's call syntax the reply used (not recorded yet)
    # agent cases
    final_answer: str | None = None
    final_answer_ok: bool | None = None
    rounds: int = 1
    ended_by: Literal["answer", "round_limit", "error"] | None = None
    trajectory: list[Round] = Field(default_factory=list)
    tool_errors: int = 0
    # timings
    latency_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_s: float | None = None
    endpoint: str | None = None
    cached: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_failure(cls, data: Any) -> Any:
        # Older runs stored one string, "kind: detail"; read it into the two fields.
        if isinstance(data, dict) and "failure" in data:
            data = dict(data)
            text = data.pop("failure")
            if text and data.get("failure_kind") is None:
                data["failure_kind"], data["failure_detail"] = failures.from_legacy(text)
        return data

    def key(self) -> tuple[str, str, str, int]:
        return (self.suite, self.case_id, self.format, self.repeat)


# ---------------------------------------------------------------- run directory


class SuiteRef(BaseModel):
    name: str
    path: str
    sha256: str
    cases: int


class Settings(BaseModel):
    model_config = ConfigDict(extra="allow")
    temperature: float = 0.0
    repeats: int = 1
    concurrency: int = 4
    seed: int | None = 0
    max_tokens: int = 512
    stream: bool = True
    timeout_s: float = 120.0
    retries: int = 2


class Header(BaseModel):
    model_config = ConfigDict(extra="allow")
    evalkit_version: str
    run_id: str
    started_at: str
    model: str
    model_requested: str | None = None
    backend: str
    base_url: str
    base_urls: list[str] = Field(default_factory=list)
    formats: list[str]
    suites: list[SuiteRef]
    settings: Settings
    server: dict[str, Any] = Field(default_factory=dict)
    shard: str | None = None
    tags: list[str] | None = None
    limit: int | None = None  # first N cases per suite, for a quick look at a large suite
    sample: int | None = None  # N cases per suite drawn by `sample_cases` with settings.seed


class SweepMember(BaseModel):
    model: str  # as the user typed it after --model
    run_dir: str | None = None  # its run directory, relative to the sweep directory; None until it starts


class Sweep(BaseModel):
    """sweep.json: one `evalkit run --model A --model B ...`, the run options every member shares,
    and each member's run directory (all inside the sweep directory)."""

    model_config = ConfigDict(extra="allow")
    evalkit_version: str
    sweep_id: str
    started_at: str
    members: list[SweepMember]
    base_urls: list[str] = Field(default_factory=list)
    suites: list[str] = Field(default_factory=list)  # as given to --suite (empty: the built-in ones)
    formats: list[str]
    tags: list[str] = Field(default_factory=list)
    limit: int | None = None
    sample: int | None = None
    settings: Settings
    concurrency_given: bool = False
    cache: bool | None = None
    max_parallel_tool_calls: int = 1
    engine_ctx: int = 4096
    engine_threads: int | None = None
    report: bool = True


class Interval(BaseModel):
    low: float
    high: float


class Aggregate(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    format: str
    suite: str  # "*" for all suites together
    tag: str | None = None
    n: int
    errors: int
    # Scored samples answered from the response cache; timings are over the other (live) ones.
    from_cache: int | None = None
    call_accuracy: float | None
    call_accuracy_ci95: Interval | None
    intent_accuracy: float | None
    pass_hat_k: dict[str, float] | None = None
    args_validity: float | None
    malformed_rate: float | None
    hallucination_rate: float | None
    no_call_accuracy: float | None
    # BFCL's rule, for comparison with its leaderboard: an attempt that did not decode into any
    # call (no call without a parse_error) counts as abstaining. no_call_accuracy counts it as wrong.
    no_call_accuracy_bfcl: float | None = None
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    tokens_per_s: float | None
    flip_rate: float | None = None  # with repeats: share of cases whose verdict differs between repeats


class Results(BaseModel):
    run_id: str
    model: str
    aggregates: list[Aggregate]
