"""BFCL entries -> evalkit cases: tool definitions fitted to BFCL's answers, ground truth as
evalkit matchers (see the package docstring for the mapping), one JSONL suite per category."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from ..errors import EvalkitError
from ..matchers import is_matcher, loose_key
from ..rundir import write_atomic
from .wheel import BFCL_VERSION, CATEGORIES, DATA_PREFIX, DESCRIPTIONS, data_dir, fetch_wheel, read_jsonl

PYTHON_HINT = " Note that the provided function is in Python 3 syntax."  # BFCL adds it to every description
FLOAT_HINT = " This is a float type value."  # and this to float parameters in FC mode

# BFCL's parameter types -> JSON Schema (as BFCL's GORILLA_TO_OPENAPI does for the Python categories).
JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
    "any": "string",
}
# ... and to the Python type BFCL's checker demands of a value (its PYTHON_TYPE_MAPPING).
PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_JSON_TYPE_OF = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


# ---------------------------------------------------------------- names and schemas


def tool_name(name: str) -> str:
    """The OpenAI-valid name evalkit offers: dots become underscores, as in BFCL's FC handlers."""
    return re.sub(r"\.", "_", name)


def _convert_schema(node: dict[str, Any], *, property_level: bool) -> dict[str, Any]:
    """One BFCL parameter schema -> JSON Schema, as BFCL's `_cast_to_openai_type` does for FC mode."""
    out = dict(node)
    bfcl_type = node.get("type")
    json_type = JSON_TYPES.get(bfcl_type, "string") if isinstance(bfcl_type, str) else "string"
    out["type"] = json_type
    if bfcl_type != json_type:
        out["x-bfcl-type"] = bfcl_type
    if bfcl_type == "float" and property_level:
        out["format"] = "float"
        out["description"] = out.get("description", "") + FLOAT_HINT
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _convert_schema(v, property_level=True) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _convert_schema(node["items"], property_level=False)
    return out


def _widen(schema: dict[str, Any], value: Any) -> None:
    """Let `schema` also accept the JSON type of `value` (BFCL's "variable" rule, see below)."""
    extra = _JSON_TYPE_OF.get(type(value))
    if extra is None:
        return
    current = schema.get("type")
    types = list(current) if isinstance(current, list) else [current]
    if extra in types or (extra == "integer" and "number" in types):
        return
    schema["type"] = types + [extra]


_NONE = object()


def _first_real(values: list[Any]) -> Any:
    """The first acceptable value that is not "" (`_NONE` when there is none; None is a value)."""
    return next((v for v in values if v != ""), _NONE)


def _enum_has(members: Any, value: Any) -> bool:
    return isinstance(value, str) and isinstance(members, list) and any(
        isinstance(m, str) and loose_key(m) == loose_key(value) for m in members
    )


def _reconcile(node: dict[str, Any], value: Any, notes: list[str], where: str) -> None:
    """Make `node` accept `value`, an answer BFCL's checker accepts, without loosening more than that.

    BFCL never validates enums, bounds or nested types, and its answers sometimes break them (an
    enum on an array instead of its items, "openai" among ["openapi", ...], `null` for a string).
    A `type` that rejects the answer is widened by the answer's JSON type; any other keyword the
    answer violates is kept for the model to read but no longer enforced: renamed `x-bfcl-<keyword>`.
    An enum that holds the answer up to BFCL's string standardization stays (the model can send
    the enum's spelling).
    """
    import jsonschema

    for _ in range(32):
        for error in jsonschema.Draft202012Validator(node).iter_errors(value):
            keyword = error.validator
            if keyword == "enum" and _enum_has(error.validator_value, error.instance):
                continue
            target: Any = node
            for step in list(error.schema_path)[:-1]:
                target = target[step]
            if keyword == "type":
                _widen(target, error.instance)
            elif keyword == "enum" and error.instance is None and isinstance(target.get("enum"), list):
                target["enum"] = target["enum"] + [None]  # nullable, as the widened type
            elif isinstance(target, dict) and keyword in target:
                target[f"x-bfcl-{keyword}"] = target.pop(keyword)
                notes.append(f"{where}: {keyword} not enforced ({error.message[:80]})")
            else:  # pragma: no cover - every keyword in BFCL's data is handled above
                raise EvalkitError(f"{where}: cannot reconcile the schema with BFCL's answer: {error.message}")
            break  # the schema changed: validate again
        else:
            return
    raise EvalkitError(f"{where}: schema still rejects BFCL's answer {value!r}")


def _answer_values(values: list[Any], declared: dict[str, Any]) -> list[Any]:
    """The acceptable values of a parameter that pass BFCL's type check (the others never match)."""
    expected = PYTHON_TYPES.get(declared.get("type"))
    real = [v for v in values if v != ""]
    if not real or expected is None:
        return real
    first = type(real[0])
    return [v for v in real if type(v) in (expected, first) or (expected is float and type(v) is int)]


def _fit_schema(prop: dict[str, Any], declared: dict[str, Any], values: list[Any], notes: list[str], where: str) -> None:
    """Let one parameter's JSON Schema accept every answer BFCL accepts for it.

    BFCL accepts a value of the type of the first acceptable answer even when the declared type
    differs (its "variable" case: `null` for a string without default, "dontcare" for an integer);
    inside dicts it compares values with the answer lists only, never with types or enums.
    """
    expected = PYTHON_TYPES.get(declared.get("type"))
    nested = prop.get("properties") if isinstance(prop.get("properties"), dict) else None
    items = prop.get("items") if isinstance(prop.get("items"), dict) else None
    item_props = items.get("properties") if items and isinstance(items.get("properties"), dict) else None
    for value in _answer_values(values, declared):
        if expected is dict and isinstance(value, dict):
            for key, options in value.items():
                for option in options if isinstance(options, list) else [options]:
                    if option != "" and nested is not None and key in nested:
                        _reconcile(nested[key], option, notes, f"{where}.{key}")
        elif expected is list and isinstance(value, list) and item_props is not None:
            for element in value:
                if not isinstance(element, dict):
                    _reconcile(items, element, notes, f"{where}[]")
                    continue
                for key, options in element.items():
                    for option in options if isinstance(options, list) else [options]:
                        if option != "" and key in item_props:
                            _reconcile(item_props[key], option, notes, f"{where}[].{key}")
        else:
            _reconcile(prop, value, notes, where)


def tool_defs(
    functions: list[dict[str, Any]], answers: list[dict[str, Any]] | None = None, notes: list[str] | None = None
) -> list[dict[str, Any]]:
    """BFCL function documents -> evalkit `tool_defs` (OpenAI tool definitions).

    With `answers` (the entry's ground truth) each schema is fitted to accept every answer BFCL
    accepts; `notes` collects what had to give way.
    """
    notes = [] if notes is None else notes
    by_name: dict[str, list[dict[str, Any]]] = {}
    for call in answers or []:
        for name, params in call.items():
            by_name.setdefault(name, []).append(params)
    out = []
    for function in functions:
        params = function.get("parameters") or {}
        schema = _convert_schema(params, property_level=False)
        schema["type"] = "object"
        schema.pop("x-bfcl-type", None)
        schema.setdefault("properties", {})
        declared_props = params.get("properties") or {}
        for answer in by_name.get(function["name"], []):
            for name, values in (answer or {}).items():
                if name in schema["properties"] and name in declared_props:
                    values = values if isinstance(values, list) else [values]
                    _fit_schema(schema["properties"][name], declared_props[name], values, notes, f"{function['name']}.{name}")
        definition: dict[str, Any] = {
            "name": tool_name(function["name"]),
            "description": (function.get("description") or "") + PYTHON_HINT,
            "parameters": schema,
        }
        tool: dict[str, Any] = {"type": "function", "function": definition}
        if definition["name"] != function["name"]:
            # Beside `function`, not in it: prompt formats show the function object to the model.
            tool["x-original-name"] = function["name"]
        out.append(tool)
    return out


# ---------------------------------------------------------------- ground truth -> matchers


def _loose(text: str) -> dict[str, Any]:
    """A string BFCL compares after `standardize_string` (case, spaces, `,./-_*^` ignored)."""
    return {"loose": text}


def _exact(value: Any) -> dict[str, Any]:
    return {"exact": value}


def _combine(options: list[Any], optional: bool) -> Any:
    """Options (literals or single-operator matchers) -> the smallest equivalent matcher."""
    unique: list[Any] = []
    seen: set[str] = set()
    for option in options:
        key = json.dumps(option, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(option)
    if len(unique) == 1:
        only = unique[0]
        if not optional and not isinstance(only, dict):
            return only
        if is_matcher(only) and "optional" not in only:
            return {**only, "optional": True} if optional else only
        if not optional and isinstance(only, dict) and not is_matcher(only):
            return only  # a literal object
    matcher: dict[str, Any] = {"one_of": unique}
    if optional:
        matcher["optional"] = True
    return matcher


def _number_option(value: Any, allowed: set[type]) -> Any:
    """A number BFCL compares with Python `in` after requiring one of `allowed` types."""
    if allowed <= {int}:
        return _exact(int(value)) if float(value).is_integer() else _exact(value)
    if allowed <= {float}:
        return _exact(float(value))
    return value


def _list_option(candidate: list[Any], item_schema: dict[str, Any] | None) -> Any:
    """One acceptable list: BFCL's list_checker (strings standardized, the rest compared raw) or,
    for a list of dicts, its list_dict_checker (each dict as dict_checker)."""
    item_type = PYTHON_TYPES.get((item_schema or {}).get("type"))
    head = _first_real(candidate)
    allowed = {t for t in (item_type, None if head is _NONE else type(head)) if t is not None}
    elements: list[Any] = []
    for element in candidate:
        if item_type is dict and isinstance(element, dict):
            elements.append(_dict_option(element, (item_schema or {}).get("properties") or {}))
        elif isinstance(element, str):
            elements.append(_loose(element))
        elif isinstance(element, bool) or element is None:
            elements.append(element)
        elif isinstance(element, (int, float)):
            elements.append(_number_option(element, allowed))
        else:
            elements.append(_exact(element))  # nested lists and dicts: compared raw
    return elements


def _nested_options(options: list[Any], schema: dict[str, Any] | None) -> Any:
    """A key inside a dict: BFCL's dict_checker standardizes strings, compares anything else with
    Python `in`, and lets the key be left out when "" is among the options."""
    optional = "" in options
    kinds = (schema or {}).get("type")
    string_key = kinds in (None, "string", "any") or (isinstance(kinds, list) and "string" in kinds)
    out: list[Any] = []
    for value in options:
        if value == "":
            continue
        if isinstance(value, str):
            out.append(_loose(value))
        elif isinstance(value, (list, dict)):
            out.append(_exact(value))
        else:
            out.append(value)
    if optional and string_key:
        out.append(_loose(""))  # "" itself equals the standardized ""
    if not out and not optional:
        return {"one_of": []}
    if not out:
        return {"one_of": [], "optional": True}
    return _combine(out, optional)


def _dict_option(candidate: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {key: _nested_options(options if isinstance(options, list) else [options], properties.get(key)) for key, options in candidate.items()}


def param_matcher(values: list[Any], declared: dict[str, Any] | None) -> Any:
    """One parameter's acceptable values (BFCL's possible answer) -> an evalkit matcher.

    Mirrors `simple_function_checker`: the type check (declared type, int accepted for float, or
    the type of the first acceptable answer: BFCL's "variable" case, compared raw), then the
    per-type comparison (strings standardized, lists element-wise, dicts key by key).
    """
    if not isinstance(values, list):
        values = [values]
    optional = "" in values
    if declared is None:
        # Not a declared parameter: BFCL rejects it whenever it is sent ("Unexpected parameter").
        return {"one_of": [], "optional": True} if optional else {"one_of": []}
    bfcl_type = declared.get("type")
    expected = PYTHON_TYPES.get(bfcl_type, str)
    real = [v for v in values if v != ""]
    first = real[0] if real else None
    variable = bool(real) and type(first) is not expected
    options: list[Any] = []
    for value in real:
        if variable:
            # BFCL compares the value raw (`value in possible_answer`), of the answer's own type.
            if type(value) is not type(first) and not (isinstance(value, (int, float)) and isinstance(first, (int, float))):
                if not (type(value) is expected or (expected is float and type(value) is int)):
                    continue  # a value of neither accepted type could never pass
            if isinstance(value, (str, list, dict)) or (expected is int and type(value) is int):
                options.append(_exact(value))
            else:
                options.append(value)
        elif expected is str:
            if isinstance(value, str):
                options.append(_loose(value))
        elif expected is int:
            if isinstance(value, int) and not isinstance(value, bool):
                options.append(_exact(value))
        elif expected is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                options.append(value)  # an int is promoted to float before comparing
        elif expected is bool:
            if isinstance(value, bool):
                options.append(value)
        elif expected is list:
            if isinstance(value, list):
                options.append(_list_option(value, declared.get("items")))
        elif expected is dict:
            if isinstance(value, dict):
                options.append(_dict_option(value, declared.get("properties") or {}))
        else:
            options.append(value)
    if optional and (expected is str or (variable and type(first) is str)):
        options.append(_exact("") if variable else _loose(""))  # "" itself passes the type check
    if not options:
        return {"one_of": [], "optional": True} if optional else {"one_of": []}
    return _combine(options, optional)


def expected_call(answer: dict[str, Any], functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One BFCL ground-truth call `{name: {param: [acceptable values]}}` -> an evalkit expected call."""
    if len(answer) != 1:
        raise EvalkitError(f"BFCL ground truth call with {len(answer)} names: {list(answer)}")
    (name, params), = answer.items()
    declared = ((functions.get(name) or {}).get("parameters") or {}).get("properties") or {}
    args = {param: param_matcher(values, declared.get(param)) for param, values in (params or {}).items()}
    return {"name": tool_name(name), "args": args}


# ---------------------------------------------------------------- categories


def _paths(category: str, data: Path) -> tuple[Path, Path | None]:
    if category not in CATEGORIES:
        raise EvalkitError(f"unknown BFCL category {category!r} (known: {', '.join(CATEGORIES)})")
    prompts = data / f"{DATA_PREFIX}{category}.json"
    answers = None if "irrelevance" in category else data / "possible_answer" / f"{DATA_PREFIX}{category}.json"
    return prompts, answers


def convert(category: str, data_dir: Path | str, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """BFCL's entries of one category -> evalkit cases (dicts, one JSONL line each).

    `notes` collects the schema keywords relaxed because BFCL's own answer breaks them.
    """
    notes = [] if notes is None else notes
    data = Path(data_dir)
    prompt_path, answer_path = _paths(category, data)
    entries = read_jsonl(prompt_path)
    answers: dict[str, Any] = {}
    if answer_path is not None:
        for row in read_jsonl(answer_path):
            answers[row["id"]] = row["ground_truth"]
        missing = [e["id"] for e in entries if e["id"] not in answers]
        if missing or len(answers) != len(entries):
            raise EvalkitError(f"{answer_path}: answers do not pair with the {len(entries)} entries (first unpaired: {missing[:1]})")
    tags = ["bfcl", category] + (["live"] if category.startswith("live_") else [])
    cases = []
    for entry in entries:
        turns = entry.get("question") or []
        if len(turns) != 1:
            raise EvalkitError(f"{prompt_path}: {entry.get('id')}: {len(turns)} turns; only single-turn entries convert")
        functions = entry.get("function") or []
        truth = answers.get(entry["id"], [])
        by_name = {f["name"]: f for f in functions}
        calls = [expected_call(call, by_name) for call in truth]
        expect: dict[str, Any] = {"calls": calls}
        if len(calls) > 1:
            expect["order"] = "any"
        cases.append(
            {
                "id": entry["id"],
                "messages": [{"role": m["role"], "content": m.get("content") or ""} for m in turns[0]],
                "tool_defs": tool_defs(functions, truth, notes),
                "expect": expect,
                "tags": tags,
            }
        )
    return cases


def header(category: str) -> dict[str, Any]:
    return {
        "name": f"bfcl_{category}",
        "description": f"BFCL v4 {category} (bfcl-eval {BFCL_VERSION}): {DESCRIPTIONS[category]}.",
    }


def write_suite(category: str, cases: list[dict[str, Any]], out_dir: Path) -> Path:
    path = out_dir / f"{category}.jsonl"
    rows = [header(category), *cases]
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return path


def import_bfcl(
    categories: Iterable[str] | None = None,
    out_dir: Path | str = Path("suites") / "bfcl",
    *,
    data: Path | str | None = None,
) -> dict[str, int]:
    """Convert BFCL categories into `<out_dir>/<category>.jsonl`; returns the entry count of each.

    `data` is a BFCL `data/` directory; by default the pinned wheel is fetched (see `fetch_wheel`).
    """
    chosen = list(dict.fromkeys(categories or CATEGORIES))
    for category in chosen:
        _paths(category, Path("."))  # unknown names fail before anything is downloaded
    source = Path(data) if data is not None else data_dir(fetch_wheel())
    out = Path(out_dir)
    counts: dict[str, int] = {}
    for category in chosen:
        cases = convert(category, source)
        write_suite(category, cases, out)
        counts[category] = len(cases)
    return counts


