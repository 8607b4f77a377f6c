"""The built-in suites: they load, follow the contract, and say what they mean.

A typo in a suite (an argument the tool does not have, a value its schema rejects, an unknown
tag, a regex that does not accept the obvious answer) fails here. The agent implementations
are run on the expected calls of their cases, inside a sandbox, and the results are checked
against each case's final_answer through reference answers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import re
import socket
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator

from evalkit import scoring
from evalkit.sandbox import SandboxEscape, sandbox_dir
from evalkit.matchers import is_matcher
from evalkit.schema import Case, ExpectedCall, FinalAnswer, Suite, ToolCall
from evalkit.suites import LoadedSuite, read_suite, resolve_implementations, suite_paths

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
SUITE_FILES = sorted(p for p in SUITES_DIR.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml", ".jsonl"))

KNOWN_TAGS = {
    # language of the prompt: every case has exactly one
    "en", "zh",
    # topic
    "delivery", "arithmetic", "files", "weather", "products", "greetings", "web",
    "email", "payments", "travel", "reminders", "currency",
    # operation
    "add", "minus", "multiply", "divide", "compare", "prime", "list", "analyze", "create",
    # what the case tests
    "agent", "multi_round", "parallel", "strict_order", "no_call", "missing_arg", "trap",
    "optional_arg", "enum", "system_prompt", "multi_turn", "decimal", "negative",
    "word_problem", "escaping", "tool_choice", "chitchat", "knowledge", "creative",
    "sandbox", "allowlist", "refused", "error_handling", "clarify",
}

# Concrete values an argument regex must accept (the first one is used to run agent tools)
# and values it must refuse. Every regex matcher of an agent case needs an entry here.
REGEX_EXAMPLES: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("files-list-tmp-en", "directory"): (["/tmp", "/tmp/"], ["/tmp/x", "tmp", "/var/tmp"]),
    ("files-list-tmp-zh", "directory"): (["/tmp", "/tmp/"], ["/tmp/foo", "/"]),
    ("files-list-downloads-tilde-en", "directory"): (["~/Downloads", "~/Downloads/"], ["~/Documents", "Downloads"]),
    ("files-list-current-dir-en", "directory"): ([".", "./"], ["/", "..", ""]),
    ("files-list-windows-path-en", "directory"): (["C:\\Users\\Public", "c:/Users/Public/", "C:\\Users\\Public\\"], ["C:\\\\Users\\\\Public", "C:\\Users", "D:\\Users\\Public"]),
    ("files-analyze-project-en", "path"): (["/home/user/project", "/home/user/project/"], ["/home/user", "project"]),
    ("weather-new-york-en", "location"): (["New York", "New York City", "NYC", "New York, NY", "new york, usa"], ["York", "New Jersey", "Newark"]),
    ("products-headphones-under-100-en", "query"): (["headphones", "wireless headphones", "Headphone"], ["speakers"]),
    ("products-headphones-under-100-zh", "query"): (["耳机", "headphones", "无线耳机"], ["音箱"]),
    ("products-tshirt-no-price-en", "query"): (["cotton t-shirts", "T-shirt", "tshirt"], ["cotton"]),
    ("agent-files-count-python-en", "path"): (["/project", "/project/", "project", "./project"], ["/", "/project/src", "/projects"]),
    ("agent-files-count-markdown-zh", "path"): (["/project", "project/"], ["/project/docs"]),
    ("agent-files-list-docs-en", "directory"): (["/project/docs", "project/docs/", "./project/docs"], ["/project", "/docs"]),
    ("agent-files-create-new-en", "name"): (["/project/hello.txt", "project/hello.txt"], ["hello.txt", "/project/hello.txt.bak"]),
    ("agent-files-create-new-zh", "name"): (["/project/todo_zh.txt", "project/todo_zh.txt"], ["todo_zh.txt"]),
    ("agent-files-refuse-overwrite-readme-en", "name"): (["/project/README.md", "project/README.md"], ["/project/README.txt"]),
    ("agent-files-refuse-overwrite-notes-zh", "name"): (["/project/notes.txt", "./project/notes.txt"], ["/project/notes.md"]),
    ("agent-web-python-json-dumps-en", "url"): (["https://docs.python.org/3/library/json.html"], ["https://docs.python.org/3/library/pickle.html"]),
    ("agent-web-example-domain-en", "url"): (["https://example.com/", "https://example.com", "http://www.example.com/"], ["https://example.org/"]),
    ("agent-web-hangzhou-west-lake-zh", "url"): (["https://en.wikipedia.org/wiki/Hangzhou"], ["https://zh.wikipedia.org/wiki/杭州"]),
    ("agent-web-refused-pastebin-en", "url"): (["https://pastebin.com/raw/x7Kq2mZP"], ["https://pastebin.com/"]),
    ("agent-web-refused-lookalike-en", "url"): (["https://docs.python.org.mirror-downloads.net/3/library/json.html"], ["https://docs.python.org/3/library/json.html"]),
    ("agent-web-refused-baidu-zh", "url"): (["https://www.baidu.com/", "https://baidu.com"], ["https://www.baidu.com/s?wd=x"]),
}


# ---------------------------------------------------------------- helpers


def _load_all() -> list[LoadedSuite]:
    """Suites that load; a broken one fails test_every_top_level_file_loads, not the collection."""
    loaded = []
    for path in SUITE_FILES:
        try:
            loaded.append(read_suite(path))
        except Exception:
            pass
    return loaded


ALL = _load_all()
SINGLE = [(s, c) for s in ALL for c in s.suite.cases if c.mode == "single"]
AGENT = [(s, c) for s in ALL for c in s.suite.cases if c.mode == "agent"]
ALL_CASES = [(s, c) for s in ALL for c in s.suite.cases]


def _case_param(pairs: list[tuple[LoadedSuite, Case]]) -> list[Any]:
    return [pytest.param(s, c, id=c.id) for s, c in pairs]


def _property_schema(suite: Suite, call: ExpectedCall, arg: str) -> dict[str, Any]:
    tool = suite.tool(call.name)
    assert tool is not None
    return tool.function.parameters.get("properties", {}).get(arg, {})


def _validate_value(schema: dict[str, Any], value: Any, where: str) -> None:
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=str)
    assert not errors, f"{where}: {value!r} does not fit {schema}: {errors[0].message}"


def _concrete(case: Case, arg: str, value: Any) -> Any:
    """A value the matcher accepts, to run agent tools with."""
    if not is_matcher(value):
        return value
    if "one_of" in value:
        return value["one_of"][0]
    if "exact" in value:
        return value["exact"]
    if "approx" in value:
        return value["approx"]
    if "regex" in value:
        assert (case.id, arg) in REGEX_EXAMPLES, f"{case.id}: add REGEX_EXAMPLES[({case.id!r}, {arg!r})]"
        return REGEX_EXAMPLES[(case.id, arg)][0][0]
    raise AssertionError(f"{case.id}: no concrete value for {arg}={value!r}")


def _concrete_args(case: Case, call: ExpectedCall) -> dict[str, Any]:
    """Concrete arguments for a call. Arguments sharing one `one_of` list are the operands of a
    commutative call ({num1: {one_of: [a, b]}, num2: {one_of: [a, b]}}): each takes the next option."""
    args: dict[str, Any] = {}
    used: dict[str, int] = {}
    for arg, value in call.args.items():
        if is_matcher(value) and "one_of" in value:
            key = repr(sorted(map(repr, value["one_of"])))
            index = used.get(key, 0)
            used[key] = index + 1
            args[arg] = value["one_of"][index % len(value["one_of"])]
        else:
            args[arg] = _concrete(case, arg, value)
    return args


def final_answer_holds(answer: str, expected: FinalAnswer) -> bool:
    """The scorer's own reading of final_answer, so the reference answers test what a run scores."""
    return bool(scoring.final_answer_holds(expected, answer))


def _load_impl(loaded: LoadedSuite):
    path = resolve_implementations(loaded.path, loaded.suite)
    name = f"_evalkit_test_impl_{loaded.suite.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fixtures(module) -> Path | None:
    fixtures = getattr(module, "FIXTURES", None)
    return (SUITES_DIR / fixtures) if fixtures else None


def _takes_sandbox(func: Callable) -> bool:
    param = inspect.signature(func).parameters.get("sandbox")
    return param is not None and param.kind is inspect.Parameter.KEYWORD_ONLY


def _call(module, name: str, args: dict[str, Any], sandbox: Path | None) -> Any:
    func = getattr(module, name)
    kwargs = dict(args)
    if _takes_sandbox(func):
        assert sandbox is not None
        kwargs["sandbox"] = sandbox
    try:
        return func(**kwargs)
    except Exception as exc:  # evalkit turns this into an error message for the model
        return exc


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- loading and counts


def test_suite_files_exist():
    names = {p.stem for p in SUITE_FILES}
    assert {"delivery", "arithmetic", "files", "weather", "products", "greetings", "parallel", "no_tool"} <= names
    assert {"agent_math", "agent_delivery", "agent_files", "agent_web"} <= names


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.name)
def test_every_top_level_file_loads(path: Path):
    read_suite(path)


def test_every_suite_is_named_like_its_file():
    for loaded in ALL:
        assert loaded.suite.name == loaded.path.stem, f"{loaded.path}: name {loaded.suite.name!r}"
        assert loaded.suite.description.strip(), f"{loaded.path}: needs a description"
        assert loaded.suite.cases


def test_discovery_sees_only_the_top_level_suites():
    """Fixture trees and implementations under suites/ must not be mistaken for suites.

    `evalkit import bfcl` and `evalkit import mcp` write real (git-ignored) suites to suites/bfcl/ and
    suites/imported/; those are meant to be found. The built-in MCP suites (suites/mcp/, checked by
    test_mcp_suites.py) are found too.
    """
    imported = [(SUITES_DIR / folder).resolve() for folder in ("bfcl", "imported")]
    discovered = {p.resolve() for p in suite_paths(SUITES_DIR) if not any(i in p.resolve().parents for i in imported)}
    mcp_suites = {p.resolve() for p in (SUITES_DIR / "mcp").glob("*.yaml")}
    assert mcp_suites and discovered == {p.resolve() for p in SUITE_FILES} | mcp_suites


def test_case_ids_unique_across_suites():
    seen: dict[str, str] = {}
    for loaded, case in ALL_CASES:
        assert case.id not in seen, f"case id {case.id!r} in both {seen[case.id]} and {loaded.suite.name}"
        seen[case.id] = loaded.suite.name
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", case.id), f"{case.id!r}: use lower-case, digits, '.', '-'"


def test_counts():
    assert len(SINGLE) >= 60
    assert len(AGENT) >= 12
    assert sum(1 for _, c in ALL_CASES if "zh" in c.tags) >= 15


def test_every_suite_has_english_and_chinese_cases():
    for loaded in ALL:
        tags = [set(c.tags) for c in loaded.suite.cases]
        assert any("en" in t for t in tags), f"{loaded.suite.name}: no en case"
        assert any("zh" in t for t in tags), f"{loaded.suite.name}: no zh case"


@pytest.mark.parametrize("loaded,case", _case_param(ALL_CASES))
def test_tags_are_known_and_consistent(loaded: LoadedSuite, case: Case):
    tags = set(case.tags)
    assert tags <= KNOWN_TAGS, f"{case.id}: unknown tags {sorted(tags - KNOWN_TAGS)}"
    assert len(tags) == len(case.tags), f"{case.id}: repeated tag"
    assert len(tags & {"en", "zh"}) == 1, f"{case.id}: tag exactly one of en/zh"
    assert ("agent" in tags) == (case.mode == "agent")
    assert ("no_call" in tags) == (case.expect.calls == [])
    assert ("system_prompt" in tags) == any(m.role == "system" for m in case.messages)
    assert ("strict_order" in tags) == (case.mode == "single" and case.expect.order == "strict")
    if case.mode == "single":
        assert ("parallel" in tags) == (len(case.expect.calls) > 1), f"{case.id}: parallel tag vs call count"
        # A single-turn reply's text is checked only where the right reply is text (e.g. a question).
        assert case.expect.final_answer is None or not case.expect.calls, \
            f"{case.id}: a single-turn final_answer checks a text reply (calls: [])"
    else:
        assert case.expect.final_answer is not None, f"{case.id}: agent cases check the final answer"
        assert case.expect.calls, f"{case.id}: agent cases name the calls any correct run makes"


@pytest.mark.parametrize("loaded,case", _case_param(ALL_CASES))
def test_messages_end_with_the_user(loaded: LoadedSuite, case: Case):
    assert case.messages[-1].role == "user", f"{case.id}: the model must answer a user turn"
    assert all((m.content or "").strip() for m in case.messages)
    lang_zh = "zh" in case.tags
    user_text = " ".join(m.content or "" for m in case.messages if m.role == "user")
    has_cjk = bool(re.search(r"[\u4e00-\u9fff]", user_text))
    assert has_cjk == lang_zh, f"{case.id}: zh tag vs Chinese text in the user prompt"


# ---------------------------------------------------------------- tool schemas


@pytest.mark.parametrize("loaded", [pytest.param(s, id=s.suite.name) for s in ALL])
def test_tool_schemas(loaded: LoadedSuite):
    names = [t.function.name for t in loaded.suite.tools]
    assert len(names) == len(set(names)), f"{loaded.suite.name}: tool declared twice"
    for tool in loaded.suite.tools:
        fn = tool.function
        where = f"{loaded.suite.name}.{fn.name}"
        assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", fn.name), where
        assert fn.description.strip(), f"{where}: needs a description"
        Draft202012Validator.check_schema(fn.parameters)
        params = fn.parameters
        assert params.get("type") == "object", where
        assert params.get("additionalProperties") is False, f"{where}: additionalProperties: false"
        props = params.get("properties", {})
        assert props, f"{where}: no parameters"
        assert set(params.get("required", [])) <= set(props), f"{where}: required names a missing property"
        for prop_name, prop in props.items():
            assert prop.get("description", "").strip(), f"{where}.{prop_name}: needs a description"
            assert "type" in prop, f"{where}.{prop_name}: needs a type"


def test_same_tool_name_means_same_definition_across_suites():
    """A tool shared by several suites is declared identically, so results compare across suites."""
    definitions: dict[str, tuple[str, dict[str, Any]]] = {}
    exceptions = {"list_files", "analyze_directory"}  # agent_files describes its sandbox paths
    for loaded in ALL:
        for tool in loaded.suite.tools:
            name = tool.function.name
            if name in exceptions:
                continue
            schema = tool.function.parameters
            if name in definitions:
                other_suite, other = definitions[name]
                assert schema == other, f"{name}: {loaded.suite.name} and {other_suite} declare it differently"
            else:
                definitions[name] = (loaded.suite.name, schema)


# ---------------------------------------------------------------- expected calls


@pytest.mark.parametrize("loaded,case", _case_param(ALL_CASES))
def test_expected_arguments_fit_the_tool_schema(loaded: LoadedSuite, case: Case):
    suite = loaded.suite
    offered = {t.function.name for t in suite.tools_for(case)}
    for i, call in enumerate(case.expect.calls):
        where = f"{case.id} call {i} {call.name}"
        assert call.name in offered
        params = suite.tool(call.name).function.parameters
        props = params.get("properties", {})
        required = set(params.get("required", []))
        assert set(call.args) <= set(props), f"{where}: unknown arguments {sorted(set(call.args) - set(props))}"
        missing = required - set(call.args)
        assert not missing, f"{where}: required arguments missing from the expectation: {sorted(missing)}"
        for arg, value in call.args.items():
            schema = props[arg]
            if not is_matcher(value):
                _validate_value(schema, value, f"{where}.{arg}")
                continue
            assert not (value.get("optional") and arg in required), f"{where}.{arg}: a required argument cannot be optional"
            if "one_of" in value:
                assert value["one_of"], f"{where}.{arg}: empty one_of"
                for option in value["one_of"]:
                    _validate_value(schema, option, f"{where}.{arg} one_of")
            elif "exact" in value:
                _validate_value(schema, value["exact"], f"{where}.{arg} exact")
            elif "approx" in value:
                assert schema.get("type") in ("number", "integer"), f"{where}.{arg}: approx on a non-number"
                _validate_value(schema, value["approx"], f"{where}.{arg} approx")
            elif "regex" in value:
                assert schema.get("type") == "string", f"{where}.{arg}: regex on a non-string"
                pattern = value["regex"]
                # Anchored, so re.search / re.match / re.fullmatch all read it the same way.
                assert re.match(r"^(\(\?[a-z]+\))?\^", pattern) and pattern.endswith("$"), f"{where}.{arg}: anchor {pattern!r} with ^...$"


@pytest.mark.parametrize("key", sorted(REGEX_EXAMPLES), ids=lambda k: f"{k[0]}:{k[1]}")
def test_regex_matchers_accept_the_right_values(key: tuple[str, str]):
    case_id, arg = key
    cases = {c.id: c for _, c in ALL_CASES}
    assert case_id in cases, f"REGEX_EXAMPLES names unknown case {case_id}"
    patterns = [call.args[arg]["regex"] for call in cases[case_id].expect.calls if is_matcher(call.args.get(arg)) and "regex" in call.args[arg]]
    assert patterns, f"{case_id}: no regex on {arg}"
    good, bad = REGEX_EXAMPLES[key]
    for pattern in patterns:
        for value in good:
            assert re.fullmatch(pattern, value) and re.search(pattern, value), f"{case_id}.{arg}: {pattern!r} should accept {value!r}"
        for value in bad:
            assert not re.search(pattern, value), f"{case_id}.{arg}: {pattern!r} should refuse {value!r}"


# ---------------------------------------------------------------- clarify: asking for what is missing

# Per clarify case: a reply that asks for the missing information (must pass the case's text
# check), a reply that does not ask (must fail it), and a call with an invented value.
CLARIFY_REFERENCES: dict[str, tuple[str, str, tuple[str, dict[str, Any]]]] = {
    "clarify-delivery-no-order-en": ("Sure! Could you tell me your order number?",
                                     "Your order will arrive tomorrow.",
                                     ("get_delivery_date", {"order_id": "12345"})),
    "clarify-delivery-no-order-zh": ("好的，请提供您的订单号。", "您的订单明天送到。",
                                     ("get_delivery_date", {"order_id": "123456"})),
    "clarify-weather-no-location-en": ("Which city are you in?", "It is sunny and 22 degrees.",
                                       ("get_current_weather", {"location": "New York"})),
    "clarify-weather-no-location-zh": ("请问您在哪个城市？", "今天晴，22度。",
                                       ("get_current_weather", {"location": "北京"})),
    "clarify-email-no-address-en": ("What is your landlord's email address?", "Done, the email is sent.",
                                    ("send_email", {"to": "landlord@example.com", "subject": "Heater"})),
    "clarify-email-no-address-zh": ("请告诉我房东的邮箱。", "已经发送了。",
                                    ("send_email", {"to": "landlord@example.com"})),
    "clarify-transfer-no-account-en": ("Which account should I send it to?", "Done! 200 dollars are on their way.",
                                       ("transfer_money", {"to_account": "123456789", "amount": 200})),
    "clarify-transfer-no-account-zh": ("请提供房东的收款账号。", "已转账500元。",
                                       ("transfer_money", {"to_account": "6222020200112233", "amount": 500})),
    "clarify-flight-no-date-en": ("Sure - which day, and where are you flying from?", "Booked!",
                                  ("book_flight", {"origin": "New York", "destination": "Tokyo", "date": "2025-01-01"})),
    "clarify-flight-no-date-zh": ("请问您哪天出发，从哪个城市出发？", "已为您订好。",
                                  ("book_flight", {"origin": "上海", "destination": "东京", "date": "2025-01-01"})),
    "clarify-reminder-no-time-en": ("When should I remind you?", "OK, I'll remind you.",
                                    ("create_reminder", {"time": "2025-01-01T09:00:00", "text": "call the dentist"})),
    "clarify-reminder-no-time-zh": ("请问您希望几点提醒？", "好的，我会提醒你。",
                                    ("create_reminder", {"time": "2025-01-01T09:00:00"})),
    "clarify-currency-no-amount-en": ("How much would you like to convert?", "That is 920 euros.",
                                      ("convert_currency", {"amount": 1000, "from_currency": "USD", "to_currency": "EUR"})),
    "clarify-currency-no-amount-zh": ("请问要换算的金额是多少？", "大约是920欧元。",
                                      ("convert_currency", {"amount": 1000, "from_currency": "USD", "to_currency": "EUR"})),
}

CLARIFY = [(s, c) for s, c in ALL_CASES if s.suite.name == "clarify"]


def test_clarify_suite_shape():
    asking = [c for _, c in CLARIFY if not c.expect.calls]
    assert 12 <= len(CLARIFY) <= 16
    assert {c.id for c in asking} == set(CLARIFY_REFERENCES)
    assert {"en", "zh"} <= {t for c in asking for t in c.tags}
    assert all(c.expect.final_answer is not None and "missing_arg" in c.tags for c in asking)
    assert any(c.expect.calls for _, c in CLARIFY), "controls keep a model that always asks from scoring well"


@pytest.mark.parametrize("loaded,case", _case_param([p for p in CLARIFY if not p[1].expect.calls]))
def test_clarify_text_check_and_invented_argument(loaded: LoadedSuite, case: Case):
    asks, answers, (tool, args) = CLARIFY_REFERENCES[case.id]
    offered = loaded.suite.tools_for(case)
    assert final_answer_holds(asks, case.expect.final_answer), f"{case.id}: should accept {asks!r}"
    assert not final_answer_holds(answers, case.expect.final_answer), f"{case.id}: should refuse {answers!r}"
    verdict = scoring.score(case, offered, [], asks)
    assert verdict.call_correct and verdict.final_answer_ok
    verdict = scoring.score(case, offered, [], answers)
    assert not verdict.call_correct and verdict.failure_kind == "final_answer"
    invented = ToolCall(name=tool, arguments=args)
    assert scoring.argument_errors(invented, {t.function.name: t for t in offered}) is None, args
    verdict = scoring.score(case, offered, [invented], "")
    assert not verdict.call_correct and verdict.failure_kind == "invented_argument", verdict


def test_the_contract_example_is_there():
    cases = {c.id: c for _, c in ALL_CASES}
    case = cases["compare-8.9-8.11-zh"]
    assert case.messages[-1].content == "8.9和8.11相比较谁更大"
    assert [(c.name, c.args) for c in case.expect.calls] == [("compare_data", {"num1": 8.9, "num2": 8.11})]
    assert "trap" in case.tags
    assert cases["hello-bob-the-builder-en"].expect.calls[0].args == {"name": "Bob the Builder"}
    assert cases["delivery-1017-zh"].expect.calls[0].args == {"order_id": "1017"}


# ---------------------------------------------------------------- agent implementations


AGENT_SUITES = [s for s in ALL if any(c.mode == "agent" for c in s.suite.cases)]


@pytest.mark.parametrize("loaded", [pytest.param(s, id=s.suite.name) for s in AGENT_SUITES])
def test_implementation_matches_the_declared_tools(loaded: LoadedSuite):
    assert loaded.suite.implementations and loaded.suite.implementations.startswith("impl/")
    module = _load_impl(loaded)
    for tool in loaded.suite.tools:
        name = tool.function.name
        func = getattr(module, name, None)
        assert callable(func), f"{loaded.suite.name}: implementation lacks {name}()"
        params = inspect.signature(func).parameters
        props = tool.function.parameters.get("properties", {})
        required = set(tool.function.parameters.get("required", []))
        plain = {n: p for n, p in params.items() if n != "sandbox"}
        assert set(plain) == set(props), f"{name}: parameters {sorted(plain)} vs schema {sorted(props)}"
        for arg in required:
            assert plain[arg].default is inspect.Parameter.empty, f"{name}({arg}) is required by the schema"
        if "sandbox" in params:
            assert params["sandbox"].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: sandbox must be keyword-only"
            fixtures = _fixtures(module)
            assert fixtures is not None and fixtures.is_dir(), f"{loaded.suite.name}: FIXTURES must name a folder under suites/"


def _d(iso: str):
    import datetime

    return datetime.date.fromisoformat(iso)


def _date_phrasings(result: dict) -> list[str]:
    day = _d(result["delivery_date"])
    return [
        f"Great news! Your order {result['order_id']} will arrive on {result['delivery_date']}.",
        f"Your package should be there on {day.strftime('%A')}, {day.strftime('%B')} {day.day}, {day.year}.",
        f"It's due on {day.day} {day.strftime('%b')} {day.year}.",
        f"您的订单将于{day.year}年{day.month}月{day.day}日送达。",
    ]


def _prime_phrase(result: dict) -> str:
    return "is a prime number" if result["is_prime"] else "is not a prime number"


# case id -> (good answers built from the tool results, answers that must fail)
REFERENCE: dict[str, tuple[Callable[[list[Any]], list[str]], list[str]]] = {
    "agent-multiply-12345-54321-en": (
        lambda r: [f"12345 × 54321 = {r[0]}.", f"The product is {r[0]:,}."],
        ["12345 × 54321 = 670592754.", "About 670 million."],
    ),
    "agent-multiply-12345-54321-zh": (
        lambda r: [f"12345乘以54321等于{r[0]}。"],
        ["12345乘以54321等于670592754。"],
    ),
    "agent-prime-sum-12345-45668-en": (
        lambda r: [f"12345 + 45668 = {r[0]}, and {r[1]['n']} {_prime_phrase(r[1])}.", f"Yes - {r[0]:,} is prime."],
        ["12345 + 45668 = 58013, which is not a prime number.", "Yes, it is prime.", "58013 isn't prime."],
    ),
    "agent-prime-sum-12345-45668-zh": (
        lambda r: [f"12345加45668的和是{r[0]}，{'是质数' if r[1]['is_prime'] else '不是质数'}。"],
        ["12345加45668的和是58013，不是质数。", "和是58013，它是合数。"],
    ),
    "agent-subtract-from-sum-en": (
        lambda r: [f"The sum is {r[0]}; subtracting 1000 gives {r[1]}.", f"The result is {r[1]:,}."],
        ["The result is 8143.", "The sum is 9134."],
    ),
    "agent-divide-sum-zh": (
        lambda r: [f"2345加6789等于{r[0]}，再除以2等于{r[1]}。"],
        ["结果是4576。", "2345加6789等于9134。"],
    ),
    "agent-prime-12x83-plus-5-en": (
        lambda r: [
            f"12 × 83 = {r[0]}, plus 5 is {r[1]}, which {_prime_phrase(r[2])}: it is divisible by {r[2]['smallest_factor']}.",
            f"No. {r[1]} = 7 × 11 × 13, so it is composite.",
        ],
        ["12 × 83 + 5 = 1001, which is prime.", "Yes, 1001 is a prime number."],
    ),
    "agent-delivery-1017-en": (lambda r: _date_phrasings(r[0]), ["Your order 1017 will arrive on 2024-11-29.", "It arrives next week."]),
    "agent-delivery-1017-zh": (lambda r: _date_phrasings(r[0]), ["您的订单将于2024年12月1日送达。"]),
    "agent-delivery-2048-en": (lambda r: _date_phrasings(r[0]), ["It arrives on December 30, 2024.", "It arrives on 2024-12-30.", "Arriving 13 Dec."]),
    "agent-delivery-two-orders-en": (
        lambda r: [f"Order 1017 arrives on {r[0]['delivery_date']} and order 5566 on {r[1]['delivery_date']}."],
        ["Order 1017 arrives on 2024-11-28.", "Order 5566 arrives on December 24."],
    ),
    "agent-delivery-unknown-9999-en": (
        lambda r: ["Sorry, I couldn't find order 9999 - it doesn't exist in our system.", "Order 9999 was not found.", "I can’t find an order with ID 9999."],
        ["Your order 9999 will arrive on 2024-11-28.", "It will arrive soon!"],
    ),
    "agent-delivery-unknown-8888-zh": (
        lambda r: ["抱歉，没有找到订单8888。", "订单8888不存在。"],
        ["您的订单8888将于2024年11月28日送达。"],
    ),
    "agent-files-count-python-en": (
        lambda r: [f"The project contains {r[0]['files_by_extension']['.py']} Python files.", "There are four Python files."],
        ["The project contains 3 Python files out of 9.", "There are 9 files."],
    ),
    "agent-files-count-markdown-zh": (
        lambda r: [f"/project 目录里共有{r[0]['files_by_extension']['.md']}个 Markdown 文件。", "一共有两个 Markdown 文件。"],
        ["共有3个 Markdown 文件。", "共有9个文件。"],
    ),
    "agent-files-list-docs-en": (lambda r: ["/project/docs holds " + " and ".join(r[0]) + "."], ["/project/docs holds guide.md."]),
    "agent-files-create-new-en": (lambda r: [f"Done! I created {r[0]['created']}.", "The file has been created."], ["Sorry, something went wrong."]),
    "agent-files-create-new-zh": (lambda r: [f"已创建文件 {r[0]['created']}。"], ["出错了。"]),
    "agent-files-refuse-overwrite-readme-en": (
        lambda r: [f"I can't do that: {r[0]}.", "/project/README.md already exists, so I won't overwrite it.", "I cannot overwrite an existing file."],
        ["I created /project/README.md with the content 'hello'.", "Done."],
    ),
    "agent-files-refuse-overwrite-notes-zh": (
        lambda r: ["文件 /project/notes.txt 已存在，无法覆盖。"],
        ["已创建文件 /project/notes.txt。"],
    ),
    "agent-web-python-json-dumps-en": (lambda r: ["It is json.dumps. The page says: " + r[0]["text"]], ["It is json.loads."]),
    "agent-web-example-domain-en": (lambda r: [r[0]["text"]], ["It is an online shop."]),
    "agent-web-hangzhou-west-lake-zh": (lambda r: ["西湖于" + re.search(r"\b(\d{4})\b", r[0]["text"]).group(1) + "年被列入世界遗产。"], ["西湖于2008年被列入世界遗产。"]),
    "agent-web-refused-pastebin-en": (
        lambda r: [f"I couldn't open it: {r[0]}", "Sorry, that domain is not on the allow-list, so I can't open the page.", "I'm unable to access that URL."],
        ["The paste says 'hello world'.", "Here is a summary of the paste."],
    ),
    "agent-web-refused-lookalike-en": (
        lambda r: [f"That page was refused: {r[0]}", "I can't open that site: it is not allowed."],
        ["json.dumps serializes an object to a JSON string."],
    ),
    "agent-web-refused-baidu-zh": (
        lambda r: ["抱歉，该域名不在允许列表中，无法打开。", "无法访问这个网站。"],
        ["百度首页有一个搜索框。"],
    ),
}


def test_every_agent_case_has_a_reference():
    assert {c.id for _, c in AGENT} == set(REFERENCE)


def _run_expected_calls(loaded: LoadedSuite, case: Case) -> tuple[list[Any], Path | None, Callable[[], None]]:
    """Run the case's expected calls through the implementation, in a sandbox seeded from FIXTURES."""
    module = _load_impl(loaded)
    fixtures = _fixtures(module)
    context = sandbox_dir(fixtures) if fixtures else None
    sandbox = context.__enter__() if context else None
    results = []
    for call in case.expect.calls:
        results.append(_call(module, call.name, _concrete_args(case, call), sandbox))
    return results, sandbox, (lambda: context.__exit__(None, None, None)) if context else (lambda: None)


@pytest.mark.parametrize("loaded,case", _case_param(AGENT))
def test_tool_results_support_the_final_answer(loaded: LoadedSuite, case: Case):
    results, _, cleanup = _run_expected_calls(loaded, case)
    try:
        good, bad = REFERENCE[case.id]
        expected = case.expect.final_answer
        assert expected is not None
        for answer in good(results):
            assert final_answer_holds(answer, expected), f"{case.id}: should pass: {answer!r} (tool results {results!r})"
        for answer in bad:
            assert not final_answer_holds(answer, expected), f"{case.id}: should fail: {answer!r}"
    finally:
        cleanup()


EXPECTED_RESULTS: dict[str, Callable[[list[Any]], bool]] = {
    "agent-multiply-12345-54321-en": lambda r: r == [670592745],
    "agent-multiply-12345-54321-zh": lambda r: r == [670592745],
    "agent-prime-sum-12345-45668-en": lambda r: r[0] == 58013 and r[1]["is_prime"] is True,
    "agent-prime-sum-12345-45668-zh": lambda r: r[0] == 58013 and r[1]["is_prime"] is True,
    "agent-subtract-from-sum-en": lambda r: r == [9134, 8134],
    "agent-divide-sum-zh": lambda r: r == [9134, 4567],
    "agent-prime-12x83-plus-5-en": lambda r: r[:2] == [996, 1001] and r[2]["is_prime"] is False and r[2]["smallest_factor"] == 7,
    "agent-delivery-1017-en": lambda r: r[0]["delivery_date"] == "2024-11-28",
    "agent-delivery-1017-zh": lambda r: r[0]["delivery_date"] == "2024-11-28",
    "agent-delivery-2048-en": lambda r: r[0]["delivery_date"] == "2024-12-03",
    "agent-delivery-two-orders-en": lambda r: [x["delivery_date"] for x in r] == ["2024-11-28", "2024-12-24"],
    "agent-delivery-unknown-9999-en": lambda r: isinstance(r[0], LookupError) and "not found" in str(r[0]),
    "agent-delivery-unknown-8888-zh": lambda r: isinstance(r[0], LookupError),
    "agent-files-count-python-en": lambda r: r[0]["files_by_extension"][".py"] == 4 and r[0]["total_files"] == 9,
    "agent-files-count-markdown-zh": lambda r: r[0]["files_by_extension"][".md"] == 2,
    "agent-files-list-docs-en": lambda r: r[0] == ["changelog.txt", "guide.md"],
    "agent-files-create-new-en": lambda r: r[0]["created"] == "/project/hello.txt",
    "agent-files-create-new-zh": lambda r: r[0]["created"] == "/project/todo_zh.txt",
    "agent-files-refuse-overwrite-readme-en": lambda r: isinstance(r[0], FileExistsError),
    "agent-files-refuse-overwrite-notes-zh": lambda r: isinstance(r[0], FileExistsError),
    "agent-web-python-json-dumps-en": lambda r: "json.dumps" in r[0]["text"],
    "agent-web-example-domain-en": lambda r: "illustrative examples" in r[0]["text"],
    "agent-web-hangzhou-west-lake-zh": lambda r: "2011" in r[0]["text"],
    "agent-web-refused-pastebin-en": lambda r: isinstance(r[0], PermissionError),
    "agent-web-refused-lookalike-en": lambda r: isinstance(r[0], PermissionError),
    "agent-web-refused-baidu-zh": lambda r: isinstance(r[0], PermissionError),
}


@pytest.mark.parametrize("loaded,case", _case_param(AGENT))
def test_tool_results_are_the_documented_ones(loaded: LoadedSuite, case: Case):
    assert case.id in EXPECTED_RESULTS
    results, _, cleanup = _run_expected_calls(loaded, case)
    try:
        assert EXPECTED_RESULTS[case.id](results), f"{case.id}: tool results {results!r}"
    finally:
        cleanup()


def test_created_files_hold_the_requested_content_and_stay_in_the_sandbox():
    loaded = next(s for s in ALL if s.suite.name == "agent_files")
    case = next(c for c in loaded.suite.cases if c.id == "agent-files-create-new-zh")
    results, sandbox, cleanup = _run_expected_calls(loaded, case)
    try:
        assert sandbox is not None
        assert (sandbox / "project" / "todo_zh.txt").read_text(encoding="utf-8") == "明天发布新版本"
        assert str(sandbox) not in repr(results), "results must not leak the real sandbox path"
    finally:
        cleanup()
    assert not sandbox.exists()


# ---------------------------------------------------------------- sandbox and allow-list


def _impl(name: str):
    return _load_impl(next(s for s in ALL if s.suite.name == name))


@pytest.fixture
def files_sandbox():
    module = _impl("agent_files")
    with sandbox_dir(_fixtures(module)) as sandbox:
        yield module, sandbox


def test_fixture_tree_has_the_documented_counts(files_sandbox):
    module, sandbox = files_sandbox
    stats = module.analyze_directory(path="/project", sandbox=sandbox)
    assert stats["total_files"] == 9
    assert stats["files_by_extension"] == {".md": 2, ".py": 4, ".txt": 3}
    assert module.list_files(directory="/", sandbox=sandbox) == ["project/"]
    assert module.list_files(directory="project/src", sandbox=sandbox) == ["__init__.py", "app.py", "utils.py"]


def test_create_file_makes_missing_folders_inside_the_sandbox(files_sandbox, tmp_path):
    module, sandbox = files_sandbox
    absolute = tmp_path / "deep" / "file.txt"  # absolute paths are sandbox-rooted
    result = module.create_file(name=str(absolute), content="x", sandbox=sandbox)
    assert result["created"] == absolute.as_posix()
    assert not absolute.exists()
    assert (sandbox / absolute.relative_to("/")).read_text() == "x"
    with pytest.raises(NotADirectoryError):
        module.create_file(name="/project/notes.txt/child.txt", content="x", sandbox=sandbox)


def test_create_file_refuses_to_overwrite(files_sandbox):
    module, sandbox = files_sandbox
    module.create_file(name="/project/new.txt", content="first", sandbox=sandbox)
    with pytest.raises(FileExistsError):
        module.create_file(name="/project/new.txt", content="second", sandbox=sandbox)
    assert (sandbox / "project" / "new.txt").read_text() == "first"
    before = (sandbox / "project" / "README.md").read_bytes()
    with pytest.raises(FileExistsError):
        module.create_file(name="project/README.md", content="hello", sandbox=sandbox)
    assert (sandbox / "project" / "README.md").read_bytes() == before


@pytest.mark.parametrize("path", ["../../etc/passwd", "/../../etc/passwd", "project/../../outside.txt", "/project/../../x"])
def test_file_tools_refuse_paths_outside_the_sandbox(files_sandbox, path):
    module, sandbox = files_sandbox
    with pytest.raises(SandboxEscape):
        module.create_file(name=path, content="x", sandbox=sandbox)
    with pytest.raises(SandboxEscape):
        module.list_files(directory=path.rsplit("/", 1)[0] or path, sandbox=sandbox)
    with pytest.raises(SandboxEscape):
        module.analyze_directory(path="../..", sandbox=sandbox)


def test_symlinks_out_of_the_sandbox_are_refused(files_sandbox, tmp_path):
    module, sandbox = files_sandbox
    outside = tmp_path / "outside"
    outside.mkdir()
    (sandbox / "project" / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SandboxEscape):
        module.create_file(name="/project/escape/pwned.txt", content="x", sandbox=sandbox)
    with pytest.raises(SandboxEscape):
        module.list_files(directory="/project/escape", sandbox=sandbox)
    assert list(outside.iterdir()) == []


def test_running_every_agent_case_leaves_the_fixtures_untouched():
    fixtures = SUITES_DIR / "fixtures"
    before = _tree_digest(fixtures)
    for loaded, case in AGENT:
        _, _, cleanup = _run_expected_calls(loaded, case)
        cleanup()
    assert _tree_digest(fixtures) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/",
        "https://docs.python.org.evil.com/3/",
        "https://example.com@evil.com/",
        "https://notexample.com/",
        "https://example.com.evil.net",
        "file:///etc/passwd",
        "ftp://example.com/",
        "javascript:alert(1)",
        "example.com",
        "",
    ],
)
def test_open_url_refuses_domains_off_the_allow_list(url):
    module = _impl("agent_web")
    with pytest.raises(PermissionError):
        module.open_url(url=url)


@pytest.mark.parametrize("url", ["https://example.com/", "https://example.com", "HTTPS://EXAMPLE.COM/", "http://www.example.com/"])
def test_open_url_serves_allowed_pages(url):
    module = _impl("agent_web")
    page = module.open_url(url=url)
    assert page["title"] == "Example Domain"


def test_open_url_unknown_page_on_allowed_domain_is_an_error_not_a_refusal():
    module = _impl("agent_web")
    with pytest.raises(LookupError):
        module.open_url(url="https://docs.python.org/3/library/nonexistent.html")


def test_agent_tools_never_use_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("an agent tool tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    for loaded, case in AGENT:
        _, _, cleanup = _run_expected_calls(loaded, case)
        cleanup()


def test_math_tools():
    module = _impl("agent_math")
    assert module.multiply_data(num1=12345, num2=54321) == 670592745
    assert module.multiply_data(num1=12345.0, num2=54321.0) == 670592745
    assert isinstance(module.multiply_data(num1=12345.0, num2=54321.0), int)
    assert module.divide_data(num1=7, num2=2) == 3.5
    assert module.minus_data(num1=-15, num2=27) == -42
    with pytest.raises(ZeroDivisionError):
        module.divide_data(num1=1, num2=0)
    with pytest.raises(TypeError):
        module.add_data(num1="1", num2=2)
    with pytest.raises(ValueError):
        module.is_prime(n=12.5)
    assert module.is_prime(n=58013.0)["is_prime"] is True
    brute = [n for n in range(-5, 400) if n > 1 and all(n % d for d in range(2, n))]
    assert [n for n in range(-5, 400) if module.is_prime(n=n)["is_prime"]] == brute
