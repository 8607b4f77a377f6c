"""Agreement between evalkit's verdicts and BFCL's own AST checker, on the same model outputs.

    python benchmarks/bfcl_agreement.py [--recorded FILE] [--synthetic] [--json OUT]

Each output (raw assistant text in BFCL's prompt/pythonic mode, or native tool calls) is scored
twice: by evalkit (the format's `parse_reply`, then `evalkit.scoring.score` against the imported
case) and by BFCL's checker (its prompt-mode decoder, then `ast_checker`, or for the irrelevance
categories its decode-or-abstain rule). Outputs come from:

* HAND_MADE below: tricky cases, each with the verdict BFCL gives and, where evalkit differs on
  purpose, the row of the differences table in docs/bfcl.md;
* `benchmarks/data/bfcl_recorded_outputs.jsonl` when present (real outputs of the embedded
  engine), one JSON object per line:
      {"category": "simple_python", "id": "simple_python_0", "format": "pythonic",
       "raw": "[calculate_triangle_area(base=10, height=5)]",
       "names": "underscored", "model": "qwen2.5-coder-0.5b"}
  `format` is "pythonic" (default; `raw` is the message content) or "native" (`raw` is the
  content and `tool_calls` the server's parsed calls, [{"name": ..., "arguments": "<json>"}]).
  `names` says how dotted function names were shown to the model: "underscored" (default; what
  evalkit's tool_defs carry, `math_factorial`, so BFCL is run as for its FC handlers) or
  "original" (`math.factorial`, BFCL's prompt mode). `model` is informational;
* `--synthetic`: ground-truth echoes and mutations of them for every entry (thousands).

How BFCL is imported: the pinned wheel is fetched (evalkit.bfcl.fetch_wheel) and its unpacked
directory put on sys.path. `ast_checker.py` is imported as is; its one heavy import,
`bfcl_eval.constants.model_config` (which imports every model handler and so every vendor SDK), is
satisfied for the duration of the import by a stand-in module whose MODEL_CONFIG_MAPPING holds two
pseudo models, `evalkit/prompt` and `evalkit/fc`, differing only in `underscore_to_dot`, the one
attribute the checker reads. The prompt-mode decoder (`default_decode_ast_prompting` and the three
functions it calls) and `is_empty_output` are compiled from the wheel's own source files, function
by function, because their modules import tenacity, tree-sitter and create directories at import
time. Nothing of BFCL is copied into this repository.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import copy
import importlib
import json
import re
import sys
import types
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evalkit import bfcl  # noqa: E402
from evalkit.bfcl import conversion as bfcl_conversion  # noqa: E402
from evalkit.formats import get_format  # noqa: E402
from evalkit.schema import Case, ToolDef  # noqa: E402
from evalkit.scoring import abstains_by_bfcl_rule, score  # noqa: E402

RECORDED = ROOT / "benchmarks" / "data" / "bfcl_recorded_outputs.jsonl"


# ---------------------------------------------------------------- BFCL, imported from the wheel


def _functions_from(path: Path, names: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Compile the named top-level functions of a BFCL source file, leaving its imports out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    missing = set(names) - {node.name for node in wanted}
    if missing:
        raise RuntimeError(f"{path}: no function(s) {sorted(missing)}; has bfcl-eval changed?")
    module = ast.Module(body=wanted, type_ignores=[])
    exec(compile(module, str(path), "exec"), namespace)  # noqa: S102 - BFCL's own code, from the pinned wheel
    return {name: namespace[name] for name in names}


class BFCLChecker:
    """BFCL's verdict on one output, as its eval_runner computes it for the AST categories."""

    PROMPT_MODEL = "evalkit_prompt"  # the checker looks up model_name.replace("_", "/")
    FC_MODEL = "evalkit_fc"

    def __init__(self, root: Path):
        root = Path(root)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        stub_name = "bfcl_eval.constants.model_config"
        previous = sys.modules.get(stub_name)
        stub = types.ModuleType(stub_name)
        stub.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
            "evalkit/prompt": types.SimpleNamespace(underscore_to_dot=False),
            "evalkit/fc": types.SimpleNamespace(underscore_to_dot=True),
        }
        sys.modules[stub_name] = stub
        try:
            self.checker = importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")
        finally:
            if previous is None:
                sys.modules.pop(stub_name, None)
            else:
                sys.modules[stub_name] = previous
        enums = importlib.import_module("bfcl_eval.constants.enums")
        self.Language, self.ReturnFormat = enums.Language, enums.ReturnFormat
        package = root / "bfcl_eval"
        decoders = _functions_from(
            package / "model_handler" / "utils.py",
            ["ast_parse", "resolve_ast_call", "resolve_ast_by_type", "default_decode_ast_prompting"],
            {"ast": ast, "re": re, "builtins": builtins, "json": json, "ReturnFormat": enums.ReturnFormat},
        )
        self.decode_prompting: Callable[..., Any] = decoders["default_decode_ast_prompting"]
        helpers = _functions_from(package / "utils.py", ["is_function_calling_format_output", "is_empty_output"], {})
        self.is_format_ok = helpers["is_function_calling_format_output"]
        self.is_empty_output = helpers["is_empty_output"]

    def decode(self, output: "Output") -> Any:
        if output.format == "native":
            # BFCL's FC handlers (e.g. OpenAICompletionsHandler.decode_ast): {name: json.loads(arguments)}
            # per tool call; a reply without tool calls is its text, which does not decode.
            if not output.tool_calls:
                raise ValueError("no tool calls: the reply is text")
            decoded = []
            for call in output.tool_calls:
                arguments = call.get("arguments")
                decoded.append({call["name"]: arguments if isinstance(arguments, dict) else json.loads(arguments)})
            return decoded
        return self.decode_prompting(output.raw, self.ReturnFormat.PYTHON, False)

    def verdict(self, category: str, functions: list[dict], truth: list[dict], output: "Output") -> tuple[bool, str]:
        try:
            decoded = self.decode(output)
        except Exception as exc:  # noqa: BLE001 - BFCL catches everything here too
            decoded, error = None, f"decode failed: {type(exc).__name__}: {exc}"
        if "irrelevance" in category:  # eval_runner._evaluate_single_relevance_entry
            if decoded is None:
                return True, "undecodable, counted as an abstention"
            calls = not self.is_empty_output(decoded)
            return (not calls), ("decoded a call" if calls else "no call")
        if decoded is None:
            return False, error
        if not self.is_format_ok(decoded):
            return False, "decoder output not in function-call format"
        model = self.FC_MODEL if output.names == "underscored" else self.PROMPT_MODEL
        result = self.checker.ast_checker(
            copy.deepcopy(functions), decoded, copy.deepcopy(truth), self.Language.PYTHON, category, model
        )
        return bool(result["valid"]), "" if result["valid"] else f"{result.get('error_type')}: {result.get('error')}"


# ---------------------------------------------------------------- outputs and verdicts


@dataclass
class Output:
    category: str
    id: str
    raw: str
    format: str = "pythonic"
    tool_calls: list[dict[str, Any]] | None = None
    names: str = "underscored"  # how dotted names were shown: "underscored" | "original"
    label: str = ""
    source: str = "hand"
    bfcl: bool | None = None  # the verdict BFCL gives (hand-made cases state it)
    intended: str | None = None  # row of docs/bfcl.md's differences table when evalkit differs on purpose
    needs: str | None = None  # a core change (see CORE_CHANGES) evalkit's verdict depends on
    model: str | None = None


@dataclass
class Judgement:
    output: Output
    bfcl: bool
    bfcl_detail: str
    evalkit: bool
    evalkit_failure: str | None
    evalkit_detail: str | None
    malformed: bool
    evalkit_bfcl_style: bool  # irrelevance: an unparseable attempt counted as an abstention, as BFCL does

    @property
    def agree(self) -> bool:
        return self.bfcl == self.evalkit


@dataclass
class Entry:
    functions: list[dict[str, Any]]
    truth: list[dict[str, Any]]
    case: Case
    offered: list[ToolDef]


@dataclass
class Data:
    directory: Path
    _cache: dict[str, dict[str, Entry]] = field(default_factory=dict)

    def category(self, category: str) -> dict[str, Entry]:
        if category not in self._cache:
            prompts, answers = bfcl_conversion._paths(category, self.directory)  # noqa: SLF001
            entries = bfcl.read_jsonl(prompts)
            truth = {row["id"]: row["ground_truth"] for row in bfcl.read_jsonl(answers)} if answers else {}
            cases = {c["id"]: c for c in bfcl.convert(category, self.directory)}
            self._cache[category] = {
                e["id"]: Entry(
                    functions=e["function"],
                    truth=truth.get(e["id"], []),
                    case=Case.model_validate(cases[e["id"]]),
                    offered=[ToolDef.model_validate(t) for t in cases[e["id"]]["tool_defs"]],
                )
                for e in entries
            }
        return self._cache[category]

    def entry(self, category: str, entry_id: str) -> Entry:
        try:
            return self.category(category)[entry_id]
        except KeyError:
            raise KeyError(f"no BFCL entry {entry_id!r} in {category}") from None


def judge(checker: BFCLChecker, data: Data, output: Output) -> Judgement:
    entry = data.entry(output.category, output.id)
    fmt = get_format(output.format)
    tool_calls = [{"id": f"call_{i}", **c} for i, c in enumerate(output.tool_calls or [])]
    parsed = fmt.parse_reply(output.raw, tool_calls)
    verdict = score(entry.case, entry.offered, parsed.calls, parsed.text)
    bfcl_ok, bfcl_detail = checker.verdict(output.category, entry.functions, entry.truth, output)
    bfcl_style = verdict.call_correct or (
        not entry.case.expect.calls and abstains_by_bfcl_rule(verdict.malformed, parsed.calls)
    )
    return Judgement(
        output=output,
        bfcl=bfcl_ok,
        bfcl_detail=bfcl_detail,
        evalkit=verdict.call_correct,
        evalkit_failure=verdict.failure_kind,
        evalkit_detail=verdict.failure_detail,
        malformed=verdict.malformed,
        evalkit_bfcl_style=bfcl_style,
    )


# ---------------------------------------------------------------- core changes this depends on


def _has_loose() -> bool:
    from evalkit.matchers import MATCHERS

    return "loose" in MATCHERS


def _has_nested_optional() -> bool:
    from evalkit.matching import match_value

    return match_value({"a": 1, "b": {"one_of": [2], "optional": True}}, {"a": 1})


def _has_name_aliases() -> bool:
    from evalkit.schema import ToolCall

    tool = ToolDef.model_validate({"type": "function", "function": {"name": "a_b"}, "x-original-name": "a.b"})
    case = Case.model_validate({"id": "x", "messages": [{"role": "user", "content": "x"}], "expect": {"calls": [{"name": "a_b"}]}})
    return score(case, [tool], [ToolCall(name="a.b", arguments={})], "").call_correct


def _has_bare_pythonic_call() -> bool:
    return bool(get_format("pythonic").parse_reply("f(a=1)", []).calls)


CORE_CHANGES: dict[str, tuple[str, Callable[[], bool]]] = {
    "loose": ("`loose` string matcher (schema.py, matching.py)", _has_loose),
    "nested_optional": ("optional keys inside literal objects (matching.py)", _has_nested_optional),
    "aliases": ("calls may use a tool's x-original-name (scoring.py)", _has_name_aliases),
    "bare_call": ("pythonic parse_reply accepts a bare `f(a=1)` (formats/pythonic.py)", _has_bare_pythonic_call),
}


def core_has(change: str) -> bool:
    return CORE_CHANGES[change][1]()


# ---------------------------------------------------------------- hand-made outputs


def _o(category: str, entry_id: str, raw: str, label: str, bfcl_ok: bool, **kw: Any) -> Output:
    return Output(category=category, id=entry_id, raw=raw, label=label, bfcl=bfcl_ok, **kw)


S0 = "simple_python_0"  # calculate_triangle_area(base: integer, height: integer, unit: string = "units"?)
HAND_MADE: list[Output] = [
    # -- simple_python: types, optional and extra parameters
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5)]", "exact answer, optional unit omitted", True),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5, unit='units')]", "optional given", True),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5, unit='')]", "optional string given as ''", True),
    _o("simple_python", S0, "[calculate_triangle_area(base='10', height=5)]", "number as string", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10.0, height=5)]", "float for an integer parameter", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5, color='red')]", "extra parameter", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10)]", "required parameter missing", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5, unit='meters')]", "wrong optional value", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5, unit='UNITS ')]", "string case and whitespace", True),
    _o("simple_python", S0, "calculate_triangle_area(base=10, height=5)", "bare call without brackets", True, needs="bare_call"),
    _o("simple_python", S0, "[calculate_triangle_area(10, 5)]", "positional arguments", False),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5), calculate_triangle_area(base=10, height=5)]", "call repeated", False),
    _o("simple_python", S0, "[]", "no call", False),
    _o("simple_python", S0, "The area is 25 square units.", "prose answer", False),
    _o("simple_python", S0, "[area(base=10, height=5)]", "unknown function", False),
    _o("simple_python", S0, "```\n[calculate_triangle_area(base=10, height=5)]\n```", "plain code fence", True),
    _o("simple_python", S0, "```python\n[calculate_triangle_area(base=10, height=5)]\n```", "python code fence", False, intended="fence"),
    _o("simple_python", S0, "[calculate_triangle_area(base=5*2, height=5)]", "arithmetic expression as value", True, intended="expression"),
    _o("simple_python", S0, "[calculate_triangle_area(base=10, height=5)] This computes the area.", "text after the call", False),
    # int for float; float parameters compare numerically
    _o("simple_python", "simple_python_57", "[calculate_cell_density(optical_density=0.6, dilution=5)]", "float parameter", True),
    _o("simple_python", "simple_python_57", "[calculate_cell_density(optical_density=0.6, dilution=5, calibration_factor=1000000000)]", "int for float", True),
    _o("simple_python", "simple_python_57", "[calculate_cell_density(optical_density=0.6, dilution=5, calibration_factor=1e9)]", "float in exponent form", True),
    _o("simple_python", "simple_python_57", "[calculate_cell_density(optical_density='0.6', dilution=5)]", "float as string", False),
    # lists: typed elements, order, tuples
    _o("simple_python", "simple_python_82", "[calculate_average(numbers=[12.0, 15.0, 18.0, 20.0, 21.0, 26.0, 30.0])]", "float list", True),
    _o("simple_python", "simple_python_82", "[calculate_average(numbers=[12, 15, 18, 20, 21, 26, 30])]", "ints in a float list", False),
    _o("simple_python", "simple_python_82", "[calculate_average(numbers=[15.0, 12.0, 18.0, 20.0, 21.0, 26.0, 30.0])]", "list in another order", False),
    # alternatives
    _o("simple_python", "simple_python_307", "[game_result.get_winner(teams=['Lakers', 'Clippers'], date='2021-01-28')]", "dotted name (prompt mode)", True, names="original", needs="aliases"),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Lakers', 'Clippers'], date='2021-01-28')]", "underscored name (FC mode)", True),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Clippers', 'Lakers'], date='01/28/2021')]", "alternative acceptable values", True),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['lakers', 'clippers'], date='Jan.28,2021')]", "case inside a list", True),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Lakers', 'Clippers'], date='Jan. 28, 2021')]", "punctuation and spaces in a string", True, needs="loose"),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Lakers', 'Clippers'], date='2021/01/28')]", "date separators BFCL ignores", True, needs="loose"),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Lakers', 'Clippers'], date='28-01-2021')]", "date in an unlisted format", False),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=('Lakers', 'Clippers'), date='2021-01-28')]", "tuple for a list", False, intended="tuple"),
    _o("simple_python", "simple_python_307", "[game_result_get_winner(teams=['Lakers', 'Clippers'], date='2021-01-28', venue=True)]", "odd answer type accepted by BFCL (venue: string, answer True)", True),
    _o("simple_python", "simple_python_307", "[game_result.get_winner(teams=['Lakers', 'Clippers'], date='2021-01-28')]", "dotted name where underscores were shown", False, intended="alias", needs="aliases"),
    _o("simple_python", "simple_python_1", "[math_factorial(number=5)]", "underscored name", True),
    _o("simple_python", "simple_python_1", "[math.factorial(number=5)]", "dotted name", True, names="original", needs="aliases"),
    _o("simple_python", "simple_python_1", "[math_factorial(number=5)]", "underscored name where dots were shown", False, names="original", intended="alias"),
    # -- multiple
    _o("multiple", "multiple_0", "[triangle_properties.get(side1=5, side2=4, side3=3)]", "right function of several", True, names="original", needs="aliases"),
    _o("multiple", "multiple_0", "[triangle_properties_get(side1=5, side2=4, side3=3)]", "right function, FC names", True),
    _o("multiple", "multiple_0", "[circle_properties_get(radius=3)]", "wrong function of several", False),
    # -- parallel: order-free, exact count
    _o("parallel", "parallel_0", "[spotify_play(artist='Taylor Swift', duration=20), spotify_play(artist='Maroon 5', duration=15)]", "parallel in order", True),
    _o("parallel", "parallel_0", "[spotify_play(artist='Maroon 5', duration=15), spotify_play(artist='Taylor Swift', duration=20)]", "parallel in another order", True),
    _o("parallel", "parallel_0", "[spotify_play(artist='Taylor Swift', duration=20)]", "one call missing", False),
    _o("parallel", "parallel_0", "[spotify_play(artist='Taylor Swift', duration=20), spotify_play(artist='Maroon 5', duration=15), spotify_play(artist='Maroon 5', duration=15)]", "one call too many", False),
    _o("parallel", "parallel_0", "[spotify_play(artist='Maroon 5', duration=20), spotify_play(artist='Taylor Swift', duration=15)]", "values crossed between calls", False),
    _o("parallel", "parallel_0", "[spotify_play(artist='taylor swift', duration=20), spotify_play(artist='MAROON 5', duration=15)]", "case differences", True),
    _o("parallel", "parallel_0", "[spotify_play(artist='TaylorSwift', duration=20), spotify_play(artist='Maroon5', duration=15)]", "spaces removed", True, needs="loose"),
    _o("parallel", "parallel_2", "[calculate_resistance(length=5, area=0.01, resistivity='aluminum'), calculate_resistance(length=5, area=0.01)]", "optional omitted in one parallel call", True),
    _o(
        "parallel", "parallel_178",
        "[get_stock_price(company_name='Apple', date='2022-01-01'), get_stock_price(company_name='Microsoft', date='2022-01-01'), "
        "get_stock_price(company_name='Microsoft', date='2022-02-01'), get_stock_price(company_name='Apple', date='2022-02-01')]",
        "overlapping answers: BFCL's greedy pairing fails", False, intended="greedy",
    ),  # fmt: skip
    _o(
        "parallel", "parallel_178",
        "[get_stock_price(company_name='Microsoft', date='2022-01-01'), get_stock_price(company_name='Microsoft', date='2022-02-01'), "
        "get_stock_price(company_name='Apple', date='2022-01-01'), get_stock_price(company_name='Apple', date='2022-02-01')]",
        "overlapping answers in the order BFCL lists them", True,
    ),  # fmt: skip
    # -- parallel_multiple: a "variable" answer
    _o("parallel_multiple", "parallel_multiple_21", "[data_loading(file_path='dataset.csv'), linear_regression_fit(x=\"data['sales']\", y=\"data['future_sales']\", return_residuals=True)]", "variable given as a string", True),
    _o("parallel_multiple", "parallel_multiple_21", "[data_loading(file_path='dataset.csv'), linear_regression_fit(x=data['sales'], y=data['future_sales'], return_residuals=True)]", "variable given as code", True, intended="expression"),
    # -- nested dicts (live_parallel_multiple_0-0-0: new_preferences with optional keys)
    _o(
        "live_parallel_multiple", "live_parallel_multiple_0-0-0",
        "[ChaFod(foodItem='Caesar salad', removeIngredients='anchovies'), ChaDri_change_drink(drink_id='123', new_preferences={'size': 'large', 'temperature': 'hot', 'sweetness_level': 'regular', 'milk_type': 'almond'})]",
        "nested dict, optional keys partly given", True, needs="nested_optional",
    ),  # fmt: skip
    _o(
        "live_parallel_multiple", "live_parallel_multiple_0-0-0",
        "[ChaFod(foodItem='Caesar salad', removeIngredients='anchovies'), ChaDri_change_drink(drink_id='123', new_preferences={'size': 'large', 'temperature': 'hot', 'sweetness_level': 'regular', 'milk_type': 'almond', 'special_instructions': ''})]",
        "nested dict, every key given", True,
    ),  # fmt: skip
    _o(
        "live_parallel_multiple", "live_parallel_multiple_0-0-0",
        "[ChaFod(foodItem='Caesar salad', removeIngredients='anchovies'), ChaDri_change_drink(drink_id='123', new_preferences={'size': 'large', 'temperature': 'cold', 'sweetness_level': 'regular', 'milk_type': 'almond', 'special_instructions': ''})]",
        "nested dict, wrong value", False,
    ),  # fmt: skip
    _o(
        "live_parallel_multiple", "live_parallel_multiple_0-0-0",
        "[ChaFod(foodItem='Caesar salad', removeIngredients='anchovies'), ChaDri_change_drink(drink_id='123', new_preferences={'size': 'large', 'temperature': 'hot', 'sweetness_level': 'regular', 'milk_type': 'almond', 'special_instructions': '', 'ice': 'none'})]",
        "nested dict, unexpected key", False,
    ),  # fmt: skip
    _o(
        "live_parallel_multiple", "live_parallel_multiple_0-0-0",
        "[ChaFod(foodItem='Caesar salad', removeIngredients='anchovies'), ChaDri_change_drink(drink_id='123', new_preferences={'size': 'Large', 'temperature': 'hot', 'sweetness_level': 'regular', 'milk_type': 'almond', 'special_instructions': ''})]",
        "nested enum value in another case", True, intended="enum",
    ),  # fmt: skip
    # -- live: null for an optional parameter, an unpassable entry
    _o("live_simple", "live_simple_0-0-0", "[get_user_info(user_id=7890, special='black')]", "live simple", True),
    _o("live_simple", "live_simple_0-0-0", "[get_user_info(user_id=7890, special='Black')]", "live simple, case", True),
    _o("live_simple", "live_simple_30-8-0", "[aws_lexv2_models_list_exports(botId='my-bot-id', botVersion='v2', filterName=None)]", "None for an optional parameter", True),
    _o("live_simple", "live_simple_30-8-0", "[aws_lexv2_models_list_exports(botId='my-bot-id', botVersion='v2', filterName='x')]", "value where only None is listed", False),
    _o("live_simple", "live_simple_106-63-0", "[record(acc_routing_start=['Please provide the routing number for my account.'])]", "entry no output can pass (empty answer lists)", False),
    # -- irrelevance: abstention, calls, and BFCL's decode-failure-as-abstention
    _o("irrelevance", "irrelevance_0", "I cannot compute the area of a triangle with the available function.", "prose abstention", True),
    _o("irrelevance", "irrelevance_0", "[]", "empty call list", True),
    _o("irrelevance", "irrelevance_0", "[determine_body_mass_index(weight=70, height=1.75)]", "calls anyway", False),
    _o("irrelevance", "irrelevance_0", "determine_body_mass_index(weight=70, height=1.75)", "bare call anyway", False, needs="bare_call"),
    _o("irrelevance", "irrelevance_0", "[determine_body_mass_index(weight=70, height=1.75", "unparseable (truncated) call", True, intended="undecodable"),
    _o("irrelevance", "irrelevance_0", "```python\n[determine_body_mass_index(weight=70, height=1.75)]\n```", "call in a python fence", True, intended="fence"),
    _o("irrelevance", "irrelevance_0", "Sure: [determine_body_mass_index(weight=70, height=1.75)]", "call after prose", True, intended="undecodable"),
    _o("irrelevance", "irrelevance_1", "[math.sum(numbers=[1, 2, 3])]", "dotted call anyway", False, names="original"),
    _o("live_irrelevance", "live_irrelevance_0-0-0", "I can't look up addresses with these tools.", "live prose abstention", True),
    _o("live_irrelevance", "live_irrelevance_0-0-0", "[requests_get(url='https://maps.googleapis.com/maps/api/geocode/json')]", "live call anyway", False),
    # -- native (FC mode): calls arrive parsed
    Output("simple_python", S0, "", format="native", tool_calls=[{"name": "calculate_triangle_area", "arguments": '{"base": 10, "height": 5}'}], label="native call", bfcl=True),
    Output("simple_python", S0, "", format="native", tool_calls=[{"name": "calculate_triangle_area", "arguments": '{"base": 10, "height": '}], label="native, arguments not JSON", bfcl=False),
    Output("irrelevance", "irrelevance_0", "", format="native", tool_calls=[{"name": "determine_body_mass_index", "arguments": '{"weight": 70, '}], label="native, broken call on irrelevance", bfcl=True, intended="undecodable"),
    Output("irrelevance", "irrelevance_0", "No function fits.", format="native", label="native abstention", bfcl=True),
]

# The difference ids of docs/bfcl.md: what BFCL and evalkit say, by design.
INTENDED = {
    "undecodable": "BFCL counts an output that fails to decode as a correct abstention on irrelevance; evalkit counts a malformed attempt as wrong",
    "fence": "evalkit reads a ```python fenced call list; BFCL's prompt decoder fails on the language tag",
    "expression": "BFCL evaluates expressions and turns names into strings; evalkit accepts literals only (malformed)",
    "tuple": "a tuple is a list to evalkit (JSON has no tuples); BFCL's type check rejects a tuple for a list",
    "greedy": "BFCL pairs parallel calls greedily in its answer order; evalkit finds a one-to-one pairing if any exists",
    "alias": "evalkit accepts a dotted function name and its underscored form alike; BFCL only the spelling it showed",
    "enum": "evalkit validates arguments against the declared JSON Schema, enums included; BFCL never checks enums",
}


# ---------------------------------------------------------------- synthetic outputs


def _first(values: Any) -> Any:
    values = values if isinstance(values, list) else [values]
    return next((v for v in values if v != ""), None)


def _echo_value(values: Any, declared: dict[str, Any] | None) -> Any:
    value = _first(values)
    if isinstance(value, dict) and (declared or {}).get("type") == "dict":
        return {k: _first(v) for k, v in value.items() if _first(v) is not None or "" not in (v if isinstance(v, list) else [v])}
    if isinstance(value, list) and ((declared or {}).get("items") or {}).get("type") == "dict":
        return [{k: _first(v) for k, v in d.items() if _first(v) is not None} if isinstance(d, dict) else d for d in value]
    return value


def _render(name: str, args: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def synthetic(data: Data, categories: list[str]) -> list[Output]:
    """Ground-truth echoes (every parameter, or only the required ones) and mutations of them."""
    outputs: list[Output] = []
    for category in categories:
        for entry_id, entry in data.category(category).items():
            functions = {f["name"]: f for f in entry.functions}
            if "irrelevance" in category:
                outputs.append(Output(category, entry_id, "None of the functions fits.", label="abstain", source="synthetic"))
                if not entry.functions:
                    continue  # a few live_irrelevance entries offer no function at all
                f = entry.functions[0]
                required = f["parameters"].get("required", [])
                args = {p: 1 for p in required}
                text = f"[{_render(f['name'], args)}]"
                outputs.append(Output(category, entry_id, text, names="original", label="call anyway", source="synthetic"))
                continue
            full, minimal = [], []
            for call in entry.truth:
                (name, params), = call.items()
                declared = functions.get(name, {}).get("parameters", {}).get("properties", {})
                full.append((name, {p: _echo_value(v, declared.get(p)) for p, v in params.items() if _first(v) is not None or "" not in v}))
                minimal.append((name, {p: _echo_value(v, declared.get(p)) for p, v in params.items() if "" not in v}))
            variants = {
                "echo": (full, "original"),
                "echo required-only": (minimal, "underscored"),
                "echo reversed": (list(reversed(full)), "underscored"),
            }
            first_name, first_args = full[0] if full else ("", {})
            if first_args:
                key = next(iter(first_args))
                value = first_args[key]
                variants["extra parameter"] = ([(first_name, {**first_args, "zz_extra": 1})] + full[1:], "underscored")
                variants["parameter dropped"] = ([(first_name, {k: v for k, v in first_args.items() if k != key})] + full[1:], "underscored")
                if isinstance(value, bool):
                    mutated = not value
                elif isinstance(value, int):
                    mutated = float(value)
                elif isinstance(value, float):
                    mutated = int(value) if value.is_integer() else str(value)
                elif isinstance(value, str):
                    mutated = value.upper() if value.upper() != value else value.lower() + "x"
                else:
                    mutated = None
                if mutated is not None:
                    variants["value mutated"] = ([(first_name, {**first_args, key: mutated})] + full[1:], "underscored")
            if len(full) > 1:
                variants["call dropped"] = (full[:-1], "underscored")
            for label, (calls, names) in variants.items():
                rendered = [_render(n if names == "original" else bfcl.tool_name(n), a) for n, a in calls]
                outputs.append(Output(category, entry_id, f"[{', '.join(rendered)}]", names=names, label=label, source="synthetic"))
    return outputs


# ---------------------------------------------------------------- recorded outputs


def load_recorded(path: Path) -> list[Output]:
    if not path.is_file():
        return []
    outputs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            outputs.append(
                Output(
                    category=row["category"],
                    id=row["id"],
                    raw=row.get("raw") or "",
                    format=row.get("format", "pythonic"),
                    tool_calls=row.get("tool_calls"),
                    names=row.get("names", "underscored"),
                    label=row.get("label", ""),
                    model=row.get("model"),
                    source="recorded",
                )
            )
        except KeyError as exc:
            raise SystemExit(f"{path}:{number}: missing field {exc}") from None
    return outputs


# ---------------------------------------------------------------- report


def summarize(judgements: list[Judgement]) -> dict[str, dict[str, Any]]:
    groups: dict[tuple[str, str], list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[(j.output.source, j.output.category)].append(j)
        groups[(j.output.source, "*")].append(j)
    table: dict[str, dict[str, Any]] = {}
    for (source, category), items in sorted(groups.items()):
        n = len(items)
        table[f"{source}/{category}"] = {
            "n": n,
            "agree": sum(j.agree for j in items),
            "agreement": round(sum(j.agree for j in items) / n, 4),
            "bfcl_accuracy": round(sum(j.bfcl for j in items) / n, 4),
            "evalkit_accuracy": round(sum(j.evalkit for j in items) / n, 4),
            "evalkit_bfcl_style_accuracy": round(sum(j.evalkit_bfcl_style for j in items) / n, 4),
            "malformed": sum(j.malformed for j in items),
        }
    return table


def _has_nested_matcher(value: Any, inside: bool = False) -> bool:
    from evalkit.matchers import is_matcher

    if is_matcher(value):
        return any(_has_nested_matcher(v, inside) for v in value.get("one_of", [])) or (inside and bool(value.get("optional")))
    if isinstance(value, dict):
        return any(_has_nested_matcher(v, True) for v in value.values())
    if isinstance(value, list):
        return any(_has_nested_matcher(v, inside) for v in value)
    return False


def classify(j: Judgement, data: Data | None = None) -> str:
    """Why a disagreement happens: a documented difference, a missing core change, or unexplained.

    Hand-made outputs say so themselves; for the others the evidence decides (the verdict details),
    and a run on a checkout with the proposed core changes applied must leave only `intended:*`.
    """
    o = j.output
    if j.agree:
        return "agree"
    if o.intended:
        return f"intended:{o.intended}"
    if o.needs and not core_has(o.needs):
        return f"needs:{o.needs}"
    if "irrelevance" in o.category and j.bfcl and j.malformed:
        return "intended:undecodable"
    detail = j.evalkit_detail or ""
    if j.bfcl and j.evalkit_failure == "invalid_args" and "is not one of" in detail:
        return "intended:enum"
    if not j.bfcl and j.evalkit and "cannot_find_match" in j.bfcl_detail:
        return "intended:greedy"
    if j.bfcl and j.evalkit_failure in ("wrong_tool", "hallucinated_tool") and o.names == "original" and not core_has("aliases"):
        return "needs:aliases"
    if j.bfcl and j.evalkit_failure == "wrong_value":
        if data is not None and not core_has("nested_optional"):
            case = data.entry(o.category, o.id).case
            if any(_has_nested_matcher(v) for call in case.expect.calls for v in call.args.values()):
                return "needs:nested_optional"
        if not core_has("loose"):
            return "needs:loose"
    return "unexplained"


def run(
    categories: list[str] | None = None,
    *,
    recorded: Path | None = RECORDED,
    with_synthetic: bool = False,
    root: Path | None = None,
) -> tuple[list[Judgement], BFCLChecker, Data]:
    root = root or bfcl.fetch_wheel()
    checker = BFCLChecker(root)
    data = Data(bfcl.data_dir(root))
    outputs = [o for o in HAND_MADE if not categories or o.category in categories]
    if recorded is not None:
        outputs += [o for o in load_recorded(recorded) if not categories or o.category in categories]
    if with_synthetic:
        outputs += synthetic(data, categories or list(bfcl.CATEGORIES))
    return [judge(checker, data, o) for o in outputs], checker, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recorded", type=Path, default=RECORDED, help="recorded outputs (JSONL; absent is fine)")
    parser.add_argument("--synthetic", action="store_true", help="also score ground-truth echoes and mutations of every entry")
    parser.add_argument("--category", action="append", choices=bfcl.CATEGORIES, help="only these categories")
    parser.add_argument("--json", type=Path, help="write the summary and every disagreement here")
    parser.add_argument("--show", type=int, default=20, help="disagreements to print (default 20)")
    args = parser.parse_args(argv)

    judgements, _, data = run(args.category, recorded=args.recorded, with_synthetic=args.synthetic)
    table = summarize(judgements)
    print(f"{'source/category':<36} {'n':>6} {'agree':>7} {'bfcl':>7} {'evalkit':>8} {'evalkit*':>9}")
    for key, row in table.items():
        print(
            f"{key:<36} {row['n']:>6} {row['agreement']:>7.1%} {row['bfcl_accuracy']:>7.1%} "
            f"{row['evalkit_accuracy']:>8.1%} {row['evalkit_bfcl_style_accuracy']:>9.1%}"
        )
    print("evalkit* counts an unparseable attempt on irrelevance as an abstention, as BFCL does.")
    disagreements = [j for j in judgements if not j.agree]
    reasons: dict[str, int] = defaultdict(int)
    for j in disagreements:
        reasons[classify(j, data)] += 1
    if disagreements:
        print(f"\n{len(disagreements)} disagreement(s): " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
        for j in disagreements[: args.show]:
            o = j.output
            print(f"- [{classify(j, data)}] {o.source} {o.id} ({o.label or o.format}): bfcl={j.bfcl} evalkit={j.evalkit}")
            print(f"    raw: {(o.raw or json.dumps(o.tool_calls))[:160]!r}")
            print(f"    bfcl: {j.bfcl_detail[:200]}")
            print(f"    evalkit: {j.evalkit_failure}: {(j.evalkit_detail or '')[:200]}")
    missing = [f"{k} ({v[0]})" for k, v in CORE_CHANGES.items() if not v[1]()]
    if missing:
        print("\ncore changes not applied yet: " + "; ".join(missing))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "bfcl_eval": bfcl.BFCL_VERSION,
            "summary": table,
            "reasons": dict(reasons),
            "core_changes_missing": missing,
            "disagreements": [
                {**asdict(j.output), "bfcl_verdict": j.bfcl, "bfcl_detail": j.bfcl_detail, "evalkit_verdict": j.evalkit,
                 "evalkit_failure": j.evalkit_failure, "evalkit_detail": j.evalkit_detail, "why": classify(j, data)}
                for j in disagreements
            ],
        }  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
