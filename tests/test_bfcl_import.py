"""`evalkit import bfcl`: every BFCL entry converts, every suite loads, and the mapping is faithful.

The BFCL wheel is fetched with `evalkit.bfcl.fetch_wheel` (pip download --no-deps) into a cache
under pytest's temp dir; a copy already on this machine (/tmp/bfcl, or the user's evalkit cache)
is reused as a download cache, and its SHA-256 is checked like a download's.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from evalkit import bfcl
from evalkit.cli import add_import_commands
from evalkit.errors import EvalkitError
from evalkit.suites import read_suite

PUBLISHED_COUNTS = {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240}
SEED_WHEELS = [Path("/tmp/bfcl") / bfcl.WHEEL_NAME]


def bfcl_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir shared by the BFCL test modules of one session, seeded with a local wheel if any."""
    cache = tmp_path_factory.getbasetemp() / "evalkit-cache"
    target = cache / "bfcl" / bfcl.WHEEL_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        for seed in SEED_WHEELS + [bfcl.default_dir() / bfcl.WHEEL_NAME]:
            if seed.is_file():
                shutil.copyfile(seed, target)
                break
    return cache


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVALKIT_CACHE_DIR", str(bfcl_cache(tmp_path_factory)))
        root = bfcl.fetch_wheel()
        yield root


@pytest.fixture(scope="module")
def imported(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("suites") / "bfcl"
    counts = bfcl.import_bfcl(out_dir=out)
    return out, counts


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def _case(out: Path, category: str, case_id: str) -> dict:
    for line in (out / f"{category}.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("id") == case_id:
            return row
    raise AssertionError(f"{case_id} not in {category}")


def S(text: str):  # noqa: N802 - how a BFCL string answer is written: BFCL's string rule
    return {"loose": text}


def S_OPT(text: str):  # noqa: N802 - the same, for a parameter that may be left out
    return {"loose": text, "optional": True}


# ---------------------------------------------------------------- the wheel


def test_fetch_unpacks_only_data_and_checker(env):
    files = sorted(p.relative_to(env).as_posix() for p in env.rglob("*") if p.is_file() and p.name != ".unpacked")
    data = [f for f in files if f.startswith("bfcl_eval/data/")]
    assert len(data) == len(bfcl.CATEGORIES) * 2 - 2  # irrelevance categories have no answers
    code = [f for f in files if not f.startswith("bfcl_eval/data/")]
    assert "bfcl_eval/eval_checker/ast_eval/ast_checker.py" in code
    assert all(f.endswith(".py") for f in code) and len(code) < 20
    assert not any("model_handler/api_inference" in f or "multi_turn" in f for f in files)


def test_fetch_refuses_a_wheel_with_another_hash(tmp_path):
    (tmp_path / bfcl.WHEEL_NAME).write_bytes(b"not the wheel")
    with pytest.raises(EvalkitError, match="SHA-256"):
        bfcl.fetch_wheel(tmp_path)


# ---------------------------------------------------------------- counts and loading


def test_entry_counts_equal_bfcl(env, imported):
    out, counts = imported
    assert list(counts) == list(bfcl.CATEGORIES)
    data = bfcl.data_dir(env)
    for category in bfcl.CATEGORIES:
        source = _lines(data / f"BFCL_v4_{category}.json")
        assert counts[category] == source, category
        assert _lines(out / f"{category}.jsonl") == source + 1  # + the suite header line
        if "irrelevance" not in category:
            assert _lines(data / "possible_answer" / f"BFCL_v4_{category}.json") == source
    for category, n in PUBLISHED_COUNTS.items():
        assert counts[category] == n
    # The live categories, as counted in bfcl-eval 2026.3.23's data files.
    assert {c: counts[c] for c in counts if c.startswith("live_")} == {
        "live_simple": 258, "live_multiple": 1053, "live_parallel": 16,
        "live_parallel_multiple": 24, "live_irrelevance": 884,
    }  # fmt: skip


def test_every_suite_loads(imported):
    out, counts = imported
    for category in bfcl.CATEGORIES:
        loaded = read_suite(out / f"{category}.jsonl")
        suite = loaded.suite
        assert suite.name == f"bfcl_{category}"
        assert "BFCL" in suite.description
        assert len(suite.cases) == counts[category]
        for case in suite.cases:
            assert case.tool_defs is not None
            assert {"bfcl", category} <= set(case.tags)
            assert ("live" in case.tags) == category.startswith("live_")
            if "irrelevance" in category:
                assert case.expect.calls == []
            else:
                assert case.expect.calls
            if len(case.expect.calls) > 1:
                assert case.expect.order == "any"


JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


def _well_formed(node: dict, where: str) -> None:
    """What a tool schema must get right for validators and servers (a fast stand-in for the
    metaschema, which takes ~7 ms a schema; it is still applied to a sample below)."""
    types = node.get("type")
    assert types is not None and set(types if isinstance(types, list) else [types]) <= JSON_TYPES, where
    assert isinstance(node.get("required", []), list), where
    assert isinstance(node.get("enum", []), list), where
    for name, child in (node.get("properties") or {}).items():
        _well_formed(child, f"{where}.{name}")
    if "items" in node:
        _well_formed(node["items"], f"{where}[]")


def test_tool_schemas_are_valid_json_schema_with_openai_names(imported):
    out, _ = imported
    seen: dict[str, dict] = {}  # live entries share functions: check each distinct schema once
    for category in bfcl.CATEGORIES:
        for case in read_suite(out / f"{category}.jsonl").suite.cases:
            for tool in case.tool_defs or []:
                assert tool.function.name.replace("_", "").replace("-", "").isalnum()
                assert len(tool.function.name) <= 64
                assert tool.function.parameters["type"] == "object"
                key = json.dumps(tool.function.parameters, sort_keys=True)
                if key not in seen:
                    seen[key] = tool.function.parameters
                    _well_formed(tool.function.parameters, f"{case.id}:{tool.function.name}")
    for schema in list(seen.values())[::20]:
        jsonschema.Draft202012Validator.check_schema(schema)


# ---------------------------------------------------------------- the mapping, spot-checked


def test_simple_python_entry(imported):
    out, _ = imported
    case = _case(out, "simple_python", "simple_python_0")
    assert case["messages"] == [
        {"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}
    ]
    # BFCL: {"base": [10], "height": [5], "unit": ["units", ""]}; integer params keep Python's int type.
    assert case["expect"] == {
        "calls": [
            {
                "name": "calculate_triangle_area",
                "args": {"base": {"exact": 10}, "height": {"exact": 5}, "unit": {"one_of": [S("units"), S("")], "optional": True}},
            }
        ]
    }
    function = case["tool_defs"][0]["function"]
    assert function["parameters"]["type"] == "object"  # BFCL's "dict"
    assert function["parameters"]["required"] == ["base", "height"]
    assert function["description"].endswith("Note that the provided function is in Python 3 syntax.")


def test_dotted_name(imported):
    out, _ = imported
    case = _case(out, "simple_python", "simple_python_1")
    tool = case["tool_defs"][0]
    assert tool["function"]["name"] == "math_factorial"
    assert tool["x-original-name"] == "math.factorial"
    assert "x-original-name" not in tool["function"]  # prompt formats show the function object
    assert case["expect"]["calls"] == [{"name": "math_factorial", "args": {"number": {"exact": 5}}}]
    assert bfcl.tool_name("game_result.get_winner") == "game_result_get_winner"


def test_parallel_calls_are_order_free(imported):
    out, _ = imported
    case = _case(out, "parallel", "parallel_0")
    assert case["expect"] == {
        "calls": [
            {"name": "spotify_play", "args": {"artist": S("Taylor Swift"), "duration": {"exact": 20}}},
            {"name": "spotify_play", "args": {"artist": S("Maroon 5"), "duration": {"exact": 15}}},
        ],
        "order": "any",
    }


def test_irrelevance_expects_no_call(imported):
    out, _ = imported
    case = _case(out, "irrelevance", "irrelevance_0")
    assert case["expect"] == {"calls": []}
    assert [t["function"]["name"] for t in case["tool_defs"]] == ["determine_body_mass_index"]
    assert case["tags"] == ["bfcl", "irrelevance"]
    live = _case(out, "live_irrelevance", "live_irrelevance_0-0-0")
    assert live["expect"] == {"calls": []} and live["tags"] == ["bfcl", "live_irrelevance", "live"]


def test_types_become_json_schema(imported):
    out, _ = imported
    props = _case(out, "simple_python", "simple_python_57")["tool_defs"][0]["function"]["parameters"]["properties"]
    assert props["optical_density"]["type"] == "number"
    assert props["optical_density"]["x-bfcl-type"] == "float"
    assert props["optical_density"]["format"] == "float"
    assert props["optical_density"]["description"].endswith("This is a float type value.")
    assert props["dilution"] == {"type": "integer", "description": "The dilution factor applied during the experiment."}
    # float answers stay numbers (an int is accepted for a float); 1e9 is optional
    args = _case(out, "simple_python", "simple_python_57")["expect"]["calls"][0]["args"]
    assert args == {"optical_density": 0.6, "dilution": {"exact": 5}, "calibration_factor": {"one_of": [1000000000.0], "optional": True}}
    # float answers survive exactly (datasets' json loader would turn 8.854e-12 into 0.0)
    field = _case(out, "simple_python", "simple_python_39")["expect"]["calls"][0]["args"]["permitivity"]
    assert field == {"one_of": [8.854e-12], "optional": True}
    # a list of floats: BFCL checks each element's type, so elements are exact floats
    numbers = _case(out, "simple_python", "simple_python_82")["expect"]["calls"][0]["args"]["numbers"]
    assert numbers == [{"exact": v} for v in [12.0, 15.0, 18.0, 20.0, 21.0, 26.0, 30.0]]


def test_alternatives_lists_and_odd_answer_types(imported):
    out, _ = imported
    case = _case(out, "simple_python", "simple_python_307")
    args = case["expect"]["calls"][0]["args"]
    assert args["teams"] == {"one_of": [[S("Lakers"), S("Clippers")], [S("Clippers"), S("Lakers")]]}
    assert args["date"] == {"one_of": [S("2021-01-28"), S("01/28/2021"), S("Jan.28,2021")]}
    # venue is declared a string but BFCL's answer is True: BFCL then accepts a bool, so must the schema
    assert args["venue"] == {"one_of": [True, {"exact": ""}], "optional": True}  # and "" passes its type check
    assert case["tool_defs"][0]["function"]["parameters"]["properties"]["venue"]["type"] == ["string", "boolean"]


def test_null_answers_widen_the_schema(imported):
    out, _ = imported
    case = _case(out, "live_simple", "live_simple_30-8-0")
    args = case["expect"]["calls"][0]["args"]
    assert args["filterName"] == {"one_of": [None, {"exact": ""}], "optional": True}
    props = case["tool_defs"][0]["function"]["parameters"]["properties"]
    assert props["filterName"]["type"] == ["string", "null"]


def test_nested_dict_answer(imported):
    out, _ = imported
    case = _case(out, "live_parallel_multiple", "live_parallel_multiple_0-0-0")
    calls = {c["name"]: c["args"] for c in case["expect"]["calls"]}
    assert calls["ChaDri_change_drink"] == {
        "drink_id": S("123"),
        "new_preferences": {
            "size": S("large"),
            "temperature": S("hot"),
            "sweetness_level": {"one_of": [S("regular"), S("")], "optional": True},
            "milk_type": S("almond"),
            "special_instructions": S_OPT(""),
        },
    }
    assert calls["ChaFod"]["removeIngredients"] == {"one_of": [S("anchovies"), S("anchovy")]}
    assert case["tool_defs"][1]["x-original-name"] == "ChaDri.change_drink"


def test_live_entries_keep_system_messages(imported):
    out, _ = imported
    case = _case(out, "live_multiple", "live_multiple_912-191-0")
    assert [m["role"] for m in case["messages"]] == ["system", "user"]


def test_unpassable_entries_stay_unpassable(imported):
    """BFCL's answer lists some parameters with no acceptable value: nothing can pass, as in BFCL."""
    out, _ = imported
    args = _case(out, "live_simple", "live_simple_106-63-0")["expect"]["calls"][0]["args"]
    assert args["auto_loan_payment_start"] == {"one_of": []}


def test_schema_keywords_bfcl_answers_break_are_not_enforced(env):
    notes: list[str] = []
    cases = {c["id"]: c for c in bfcl.convert("live_multiple", bfcl.data_dir(env), notes)}
    tools = {t["function"]["name"]: t["function"] for t in cases["live_multiple_87-38-4"]["tool_defs"]}
    prop = tools["list_servers"]["parameters"]["properties"]["type"]
    assert "enum" not in prop and "openapi" in prop["x-bfcl-enum"]  # BFCL's answer is "openai"
    assert any("list_servers.type: enum not enforced" in n for n in notes)


# ---------------------------------------------------------------- errors and the command line


def test_unknown_category_is_one_line_error(tmp_path):
    with pytest.raises(EvalkitError, match="unknown BFCL category 'simple'"):
        bfcl.import_bfcl(["simple"], tmp_path)


def test_cli_command(env, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="evalkit")
    add_import_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import", "bfcl", "--category", "parallel", "--category", "irrelevance", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["irrelevance.jsonl", "parallel.jsonl"]
    assert "440 BFCL entries" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["import", "bfcl", "--category", "nope"])
