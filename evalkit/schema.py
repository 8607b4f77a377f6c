"""The one typed schema behind every evalkit file: suites, samples, headers and results.

Field names are documented in docs/format.md; new fields are optional so old files keep loading.
`evalkit schema NAME` publishes these models as JSON Schema (evalkit/published.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from . import failures, limits
from .matchers import check_expected, is_matcher  # noqa: F401 - is_matcher is imported from here too

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
            if why := check_expected(value):
                raise ValueError(f"argument {key!r}: {why}")
        return args


class FinalAnswer(Strict):
    contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    number: float | None = None
    tol: float = 1e-6

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, regex: str | None) -> str | None:
        # Found when the suite loads, not by the first agent sample that reaches its answer.
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from None
        return regex


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


class McpServer(Strict):
    """The MCP server that runs a suite's tools (docs/format.md section 1): started over stdio, or reached by URL.

    In `command`, `env` and `setup`, `{root}` is the server's working root and `{suite}` the suite
    file's folder; a first word `python` is the Python running evalkit, where the Python servers
    evalkit depends on are installed.
    """

    command: list[str] | None = Field(default=None, min_length=1)
    url: str | None = None  # streamable HTTP; such a server is not started or stopped by evalkit
    cwd: str | None = None  # working directory of a shared server, relative to the suite file
    env: dict[str, str] = Field(default_factory=dict)
    # A fresh working root per sample (a copy of `fixtures`, then `setup`), with its own server.
    isolate: bool = False
    fixtures: str | None = None  # folder whose contents seed the working root, relative to the suite file
    setup: list[str] | None = Field(default=None, min_length=1)  # run in the working root before the server starts
    timeout_s: float = Field(default=30.0, gt=0)  # per tool call, and for starting the server

    @model_validator(mode="after")
    def _one_way_in(self) -> "McpServer":
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (a server evalkit starts) or 'url', not both or neither")
        if self.url is not None and (self.cwd or self.env or self.isolate or self.fixtures or self.setup):
            raise ValueError("a server reached by 'url' is not started by evalkit: cwd, env, isolate, fixtures and setup do not apply")
        if self.cwd is not None and (self.fixtures is not None or self.isolate):
            raise ValueError("'cwd' is for a server on an existing folder; with 'fixtures' or 'isolate' evalkit makes the working root")
        return self


class McpImplementations(Strict):
    mcp: McpServer


# Tags of `Suite.implementations`: a string is a Python file, a mapping names an MCP server.
# suites.py leaves them out of the field it names in an error.
UNION_TAGS = ("path", "server")

Implementations = Annotated[
    Annotated[str, Tag("path")] | Annotated[McpImplementations, Tag("server")],
    Discriminator(lambda v: "path" if isinstance(v, str) else "server"),
]


class Suite(Strict):
    name: str
    description: str = ""
    tools: list[ToolDef] = Field(default_factory=list)
    implementations: Implementations | None = None
    cases: list[Case]

    @property
    def mcp(self) -> McpServer | None:
        """The suite's MCP server, when its tools run on one."""
        return self.implementations.mcp if isinstance(self.implementations, McpImplementations) else None

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


# (suite, case, format, repeat), and the distractor count when the run used --distractors.
SampleKey = tuple[Any, ...]


def sample_key(suite: str, case_id: str, fmt: str, repeat: int, distractors: int | None = None) -> SampleKey:
    base = (suite, case_id, fmt, repeat)
    return base if distractors is None else (*base, distractors)


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
    syntax: str | None = None  # which call-syntax family the reply's calls were written in (evalkit/callsyntax)
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
    # --distractors N: the pool tools added to the case's own (None: the run offered only the case's
    # tools); part of the sample's key only when set, so older runs keep their keys.
    distractors: int | None = None
    tools_offered: int | None = None  # tools in the (first) request: the case's own plus distractors
    # Prompt tokens the tool definitions cost in the first request: prompt_tokens minus the same
    # messages sent with no tools (measured with --tool-cost or --distractors; None otherwise).
    tool_tokens: int | None = None

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

    def key(self) -> SampleKey:
        return sample_key(self.suite, self.case_id, self.format, self.repeat, self.distractors)


# ---------------------------------------------------------------- run directory


class SuiteRef(BaseModel):
    name: str
    path: str
    sha256: str
    cases: int


class Settings(BaseModel):
    model_config = ConfigDict(extra="allow")
    # Finite: `nan` went to the server as NaN and into header.json as null, which no later
    # finalise, resume or report could read back.
    temperature: float = Field(0.0, allow_inf_nan=False)
    repeats: int = 1
    concurrency: int = 4
    seed: int | None = 0
    max_tokens: int = 512
    stream: bool = True
    timeout_s: float = limits.TIMEOUT_S  # the longest gap between two reads of a reply
    retries: int = 2
    # Limits (evalkit/limits.py), each reported when hit; older headers get today's defaults.
    deadline_s: float = limits.DEADLINE_S  # a whole reply, request to last byte
    max_reply_chars: int = limits.MAX_REPLY_CHARS
    retry_after_cap_s: float = limits.RETRY_AFTER_CAP_S
    max_arg_depth: int = limits.MAX_ARG_DEPTH
    max_int_bits: int = limits.MAX_INT_BITS
    max_alias_nodes: int = limits.MAX_ALIAS_NODES
    # Merged into every chat request (--extra-body, a config option's extra_body): e.g. Qwen3's
    # chat_template_kwargs or vLLM's top_k. Part of the settings, so shards that differ never merge.
    extra_body: dict[str, Any] | None = None
    # The names of the extra HTTP headers sent (--header); their values are never written.
    header_names: list[str] | None = None


class ModelFacts(BaseModel):
    """What a server tells of the model it serves (engine/facts.py names each source); None: not told."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    quantization: str | None = None
    context_length: int | None = None  # the context the server gives it
    context_length_train: int | None = None  # the context the model was trained for
    parameter_count: int | None = None
    parameter_label: str | None = None  # the server's own words, e.g. Ollama's "8.0B"
    size_bytes: int | None = None
    architecture: str | None = None
    file: str | None = None
    digest: str | None = None  # the weights' digest (Ollama /api/ps)
    vram_bytes: int | None = None  # how much of it sits in GPU memory (Ollama /api/ps size_vram)


class ServerFacts(BaseModel):
    """What a server tells of itself: engine.facts.server_facts, in a header and in probe.json."""

    model_config = ConfigDict(extra="allow")
    kind: str = "unknown"  # llama.cpp | ollama | lmstudio | vllm | unknown
    build: str | None = None
    template_sha256: str | None = None
    template_family: str | None = None  # the call-syntax family the template writes (callsyntax's table)
    tool_call_format: str | None = None  # the format the server detected from the template
    template_caps: dict[str, Any] | None = None
    slots: int | None = None
    model: ModelFacts = Field(default_factory=ModelFacts)
    served: list[str] = Field(default_factory=list)  # ids from /v1/models
    asked: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)


class Machine(BaseModel):
    """Where the model ran, as far as evalkit can tell; None: unknown."""

    model_config = ConfigDict(extra="allow")
    local: bool = False  # the server runs on this machine (the embedded engine, or a loopback URL)
    cpu_model: str | None = None  # this machine's, recorded only when the server is local
    cpu_cores: int | None = None  # cores this process may use (CPU affinity)
    gpu: bool | None = None  # does the model run (partly) on a GPU; None: the server does not tell
    gpu_detail: str | None = None  # how that is known
    engine_threads: int | None = None  # the embedded engine's CPU threads


class UntilDecided(BaseModel):
    """--until-decided: run the cases in rounds and stop once the recommendation is settled (evalkit/stopping)."""

    alpha: float = 0.05
    min_accuracy: float | None = 0.80  # the floor an option must be clear of (None: no floor)


class Stopping(BaseModel):
    """decision.json: when and why an --until-decided run (or sweep) stopped."""

    settled: bool
    kind: Literal["best", "none", "open"]
    pick: str | None = None
    cases_run: int  # cases of the fixed order every option was asked
    cases_total: int
    cases_compared: int  # of those, the ones every option has scored
    rounds: int
    alpha: float
    tests: int  # the tests sharing alpha (Bonferroni)
    min_accuracy: float | None = None
    text: str


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
    # What the server tells of itself and its model, and where it ran (issue 14, issue 12 §4).
    # Runs before these fields have only `server` (raw /v1/models and /props bodies).
    serving: ServerFacts | None = None
    model_served_ids: list[str] | None = None  # /v1/models at the start; None when it did not answer
    machine: Machine | None = None
    distractors: list[int] | None = None  # --distractors: each case runs once per count
    tool_cost: bool | None = None  # tool_tokens measured (a tools-free request per distinct prompt)
    api_key_sent: bool | None = None  # requests carried an API key (never the key itself)
    # What the server said it serves (identity.served_identity), the cache's tie to it, and
    # whether that tie pins more than a name ("tied") or not ("untied"); None: no cache used.
    served_identity: dict[str, Any] | None = None
    cache_identity: Literal["tied", "untied"] | None = None
    until_decided: UntilDecided | None = None  # the formats run in rounds until settled (evalkit/stopping)


class SweepMember(BaseModel):
    model: str  # as the user typed it after --model
    run_dir: str | None = None  # its run directory, relative to the sweep directory; None until it starts
    # From its `--config` option (None: the sweep's own); header values are read from the config
    # file again on --resume, never kept here.
    option: int | None = None  # its index in the config's `options`
    base_url: str | None = None
    api_key_env: str | None = None
    extra_body: dict[str, Any] | None = None
    formats: list[str] | None = None


class ConfigOption(Strict):
    """One entry of `evalkit run --config FILE.yaml`: a model, where it is served, how to ask it."""

    model: str = Field(min_length=1)
    base_url: str | None = None  # default: the command line's --base-url, else discovery
    api_key_env: str | None = None  # the environment variable holding its key (never the key itself)
    extra_body: dict[str, Any] | None = None  # merged into every chat request, after --extra-body
    headers: dict[str, str] | None = None  # sent with every chat request, after --header
    formats: list[str] | None = None  # default: the command line's --format


class RunConfig(Strict):
    """`evalkit run --config FILE.yaml`: the options a sweep compares (as promptfoo lists providers)."""

    options: list[ConfigOption] = Field(min_length=1)


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
    distractors: list[int] = Field(default_factory=list)  # --distractors, for every member
    tool_cost: bool = False
    probe: bool = False  # --probe: each member probes its server first (probe.json in its run directory)
    config: str | None = None  # --config: the file its members came from (their headers are read from it)
    allow_unlisted: bool = False
    engine_ctx: int = 4096
    engine_threads: int | None = None
    report: bool = True
    until_decided: UntilDecided | None = None  # the members run in rounds until settled (evalkit/stopping)


class Interval(BaseModel):
    low: float
    high: float


class Aggregate(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    format: str
    suite: str  # "*" for all suites together
    tag: str | None = None
    # Set on the rows that break a model x format down by --distractors count (suite "*", no tag);
    # the rows without it count every sample, whatever its count.
    distractors: int | None = None
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
    # Replies whose clean call in the model's own syntax the server's parser lost (native), of the
    # replies with a clean call (parsed, or lost): "the server lost 38 of 111". None in older files.
    server_parse_lost: int | None = None
    clean_calls: int | None = None
    no_call_accuracy: float | None
    # BFCL's rule, for comparison with its leaderboard: an attempt that did not decode into any
    # call (no call without a parse_error) counts as abstaining. no_call_accuracy counts it as wrong.
    no_call_accuracy_bfcl: float | None = None
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    tokens_per_s: float | None
    flip_rate: float | None = None  # with repeats: share of cases whose verdict differs between repeats
    tools_offered: float | None = None
    prompt_tokens: float | None = None
    tool_tokens: float | None = None


class Results(BaseModel):
    run_id: str
    model: str
    aggregates: list[Aggregate]


# ---------------------------------------------------------------- probe.json (`evalkit probe`, `run --probe`)

ProbeStatus = Literal["pass", "fail", "unsupported"]


class Exchange(BaseModel):
    """One HTTP exchange, as evidence: the request as sent and the reply as received.

    `raw` is the reply body: a non-streamed reply's JSON, or a stream's `data:` payloads in order
    (JSON where they parse). The fields after it are what a client reads from that raw reply.
    """

    name: str
    method: str = "POST"
    path: str = "/v1/chat/completions"
    stream: bool = False
    request: Any = None
    http_status: int | None = None
    error: str | None = None  # transport failure, or the server's error message on a non-2xx
    raw: Any = None
    elapsed_s: float = 0.0
    content: str | None = None
    calls: list[dict[str, Any]] = Field(default_factory=list)  # {id, name, arguments} as a client joins them
    finish_reason: str | None = None
    fragments: list[dict[str, Any]] = Field(default_factory=list)  # stream: every raw tool_calls delta item
    read_error: str | None = None  # evalkit's own stream reader could not join the fragments
    attempts: int = 1  # 2 when the connection dropped before any answer and it was sent again
    retried_after: str | None = None  # the first attempt's transport error

    @property
    def ok(self) -> bool:
        return self.error is None and self.http_status is not None and 200 <= self.http_status < 300


class CheckResult(BaseModel):
    name: str
    status: ProbeStatus
    detail: str
    evidence: list[Exchange] = Field(default_factory=list)


class ProbeResult(BaseModel):
    evalkit_version: str
    base_url: str
    model: str
    started_at: str
    elapsed_s: float
    requests: int  # every HTTP request the probe sent: chat completions and the facts' GETs
    chat_requests: int
    server: ServerFacts  # engine.facts.server_facts, without the raw bodies
    checks: list[CheckResult]

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    def summary(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "unsupported": 0}
        for check in self.checks:
            counts[check.status] += 1
        return counts
