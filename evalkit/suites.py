"""Finding, loading and validating suite files (YAML, or JSONL with one case per line)."""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml
from pydantic import ValidationError

from . import limits
from .errors import EvalkitError, SuiteError
from .schema import UNION_TAGS, Case, Suite

# The checkout's top-level suites/; an installed wheel has them as evalkit/builtin_suites/ (setup.py).
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "suites"
PACKAGED_DIR = Path(__file__).resolve().parent / "builtin_suites"
SUITE_SUFFIXES = (".yaml", ".yml", ".jsonl")

MAX_ALIAS_NODES = limits.MAX_ALIAS_NODES
"""How many nodes YAML aliases may add when expanded (a run's `max_alias_nodes` replaces it)."""


@dataclass
class LoadedSuite:
    suite: Suite
    path: Path
    sha256: str


def builtin_dir() -> Path:
    """Built-in suites live in the checkout's `suites/`; an installed wheel ships them as package data."""
    return PACKAGED_DIR if PACKAGED_DIR.is_dir() else BUILTIN_DIR


def suite_paths(directory: Path | None = None) -> list[Path]:
    directory = directory or builtin_dir()
    if not directory.is_dir():
        return []
    # Implementations and fixtures live beside the suites; only the parts below `directory` count,
    # so a checkout under a folder named "impl" still finds its suites.
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in SUITE_SUFFIXES and not {"impl", "fixtures"} & set(p.relative_to(directory).parts[:-1])
    )


def _field_of(error: dict[str, Any]) -> tuple[int | None, str]:
    loc = list(error.get("loc", ()))
    case_index = None
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        case_index = loc[1]
        loc = loc[2:]
    field = ".".join(str(part) for part in loc if part not in UNION_TAGS) or "(root)"
    return case_index, field


def _raise_validation(path: Path, raw: dict[str, Any], exc: ValidationError, case_ids: list[Any] | None = None) -> None:
    errors = exc.errors()
    # A typo (`expct`) also makes the real field look missing; name the typo, it is what to fix.
    unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
    error = unknown[0] if unknown else errors[0]
    case_index, field = _field_of(error)
    case_id = None
    if case_index is not None:
        cases = case_ids if case_ids is not None else [c.get("id") if isinstance(c, dict) else None for c in raw.get("cases", [])]
        case_id = cases[case_index] if case_index < len(cases) and cases[case_index] else f"#{case_index + 1}"
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    if unknown:
        loc = tuple(error.get("loc", ()))
        missing = [str(e["loc"][-1]) for e in errors if e.get("type") == "missing" and tuple(e["loc"][:-1]) == loc[:-1]]
        hint = difflib.get_close_matches(str(loc[-1]), missing, n=1) if loc else []
        message = "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    raise SuiteError(str(path), case_id, field, message) from None


def _check_unique_ids(path: Path, raw: dict[str, Any]) -> None:
    """Duplicate case ids, reported on the second case (the schema alone could only name the suite)."""
    cases = raw.get("cases")
    if not isinstance(cases, list):
        return  # the schema reports it
    seen: set[str] = set()
    for case in cases:
        case_id = case.get("id") if isinstance(case, dict) else None
        if not isinstance(case_id, str):
            continue  # the schema reports it
        if case_id in seen:
            raise SuiteError(str(path), case_id, "id", "duplicate case id; every case needs its own")
        seen.add(case_id)


def _read_jsonl(path: Path, text: str) -> dict[str, Any]:
    """JSONL suites: an optional first line holds the suite header (`name`, `tools`, ...) without `messages`.

    Parsed line by line rather than through `datasets` so a bad line is reported by its number.
    """
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SuiteError(str(path), f"line {number}", "(json)", f"not valid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number; nesting past the stack
            problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise SuiteError(str(path), f"line {number}", "(json)", f"not valid JSON: {problem}") from None
    header: dict[str, Any] = {}
    if rows and "messages" not in rows[0]:
        header = rows.pop(0)
    return {"name": path.stem, **header, "cases": rows}


# libyaml's parser when PyYAML has it: the pure-Python one took two minutes on a 17 MB suite.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _AliasBoundedLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """Safe YAML whose aliases may add at most MAX_ALIAS_NODES nodes when expanded.

    PyYAML shares one object between an anchor and its aliases, so a "billion laughs" file loads
    small; it is everything after (validation, requests, reports) that expands it. The composed
    node graph is measured before anything is constructed from it.
    """

    path: Path

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_alias_expansion(self.path, node)
        return self.construct_document(node)


def _check_alias_expansion(path: Path, root: yaml.Node) -> None:
    """Sizes of the expanded tree, counted once per distinct node (iteratively: linear)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in children)
            continue
        if key in size:
            continue
        if key in on_path:
            raise SuiteError(str(path), None, "(yaml)", "a YAML alias refers to a node that contains it; a suite cannot be recursive")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)
    added = size[id(root)] - len(size)
    if added > MAX_ALIAS_NODES:
        raise SuiteError(
            str(path), None, "(yaml)",
            f"YAML aliases expand to {added:,} more nodes, over the limit of {MAX_ALIAS_NODES:,} (an alias bomb?)",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return []


# Deeper than any real suite; libyaml (PyYAML 6.0.3) parses a 10,000-deep list without complaint
# and Python's RecursionError is not a limit to rely on, so the depth is counted after loading.
MAX_YAML_DEPTH = 200


def _load_yaml(path: Path, text: str) -> Any:
    if "&" not in text:  # no anchor, so no alias: the plain safe loader
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    else:
        loader = _AliasBoundedLoader(text)
        loader.path = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    _check_depth(path, data)
    return data


def _check_depth(path: Path, data: Any) -> None:
    """Iteratively (a recursive walk would itself overflow on the input it guards against)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise SuiteError(str(path), None, "(yaml)", f"not valid YAML: nested deeper than {MAX_YAML_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)


@contextmanager
def _gc_paused() -> Any:
    """Loading allocates millions of objects and keeps them all; the cycle collector's repeated
    full passes over them were most of the time (a 100k-case JSONL suite: 9.9 s, 2.5 s without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# The editor directive of the built-in suites (`# yaml-language-server: $schema=...`, from
# `evalkit schema suite`): it tells an editor how to check the file, not what the suite asks.
EDITOR_DIRECTIVE = b"# yaml-language-server:"


def suite_digest(data: bytes) -> str:
    """A suite file's identity (a run header's `sha256`): the SHA-256 of its bytes, leaving out a
    first-line editor directive, so adding one does not orphan the runs made before it."""
    if data.startswith(EDITOR_DIRECTIVE):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return hashlib.sha256(data).hexdigest()


def read_suite(path: Path | str) -> LoadedSuite:
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"{path}: no such suite file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is allowed and dropped
    except UnicodeDecodeError as exc:
        raise SuiteError(
            str(path), None, "(encoding)", f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8"
        ) from None
    with _gc_paused():
        try:
            raw = _read_jsonl(path, text) if path.suffix == ".jsonl" else _load_yaml(path, text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise SuiteError(str(path), None, "(yaml)", f"not valid YAML{where}") from None
        if not isinstance(raw, dict):
            raise SuiteError(str(path), None, "(root)", "must be a mapping with name, tools and cases")
        _check_unique_ids(path, raw)
        try:
            suite = Suite.model_validate(raw)
        except ValidationError as exc:
            _raise_validation(path, raw, exc)
        del raw
        _check_references(path, suite)
    return LoadedSuite(suite=suite, path=path, sha256=suite_digest(data))


def _schema_problem(parameters: dict[str, Any], checked: dict[str, str | None]) -> str | None:
    """Why a tool's `parameters` is not a JSON Schema, or None. Checked once per distinct schema,
    against the metaschema its `$schema` names (2020-12 by default, as scoring validates)."""
    blob = json.dumps(parameters, sort_keys=True, default=str)
    if blob not in checked:
        import jsonschema  # here: only a suite being loaded needs it

        cls = jsonschema.validators.validator_for(parameters, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(parameters)
            checked[blob] = None
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            checked[blob] = f"not a valid JSON Schema: {where + ': ' if where else ''}{exc.message}"
    return checked[blob]


def _check_tool_schemas(path: Path, suite: Suite) -> None:
    checked: dict[str, str | None] = {}
    for i, tool in enumerate(suite.tools):
        if problem := _schema_problem(tool.function.parameters, checked):
            raise SuiteError(str(path), None, f"tools.{i}.function.parameters", problem)
    for case in suite.cases:
        for i, tool in enumerate(case.tool_defs or []):
            if problem := _schema_problem(tool.function.parameters, checked):
                raise SuiteError(str(path), case.id, f"tool_defs.{i}.function.parameters", problem)


def _check_references(path: Path, suite: Suite) -> None:
    if suite.mcp is not None and not suite.tools and suite.cases:
        # The tools are declared in the suite (written by `evalkit import mcp`), so cases are checked
        # here without starting the server; the run checks that the server still offers them.
        raise SuiteError(str(path), None, "tools", "an MCP suite declares its tools (`evalkit import mcp` writes them)")
    _check_tool_schemas(path, suite)
    names = {t.function.name for t in suite.tools}
    for case in suite.cases:
        for tool in case.tools or []:
            if tool not in names:
                raise SuiteError(str(path), case.id, "tools", f"names {tool!r}, which the suite does not declare")
        offered = {t.function.name for t in suite.tools_for(case)}
        for i, call in enumerate(case.expect.calls):
            if call.name not in offered:
                raise SuiteError(str(path), case.id, f"expect.calls.{i}.name", f"expects {call.name!r}, which is not offered")
        if case.mode == "agent" and not suite.implementations:
            raise SuiteError(str(path), case.id, "mode", "agent cases need the suite's 'implementations'")
    server = suite.mcp
    if server is not None:
        for field in ("fixtures", "cwd"):
            value = getattr(server, field)
            if value is not None and not suite_relative(path, value).is_dir():
                raise SuiteError(str(path), None, f"implementations.mcp.{field}", f"{suite_relative(path, value)} is not a directory")
        if server.fixtures is not None:
            problem = fixtures_problem(path, suite_relative(path, server.fixtures))
            if problem:
                raise SuiteError(str(path), None, "implementations.mcp.fixtures", problem)
    elif suite.implementations:
        impl = resolve_implementations(path, suite)
        if not impl.is_file():
            raise SuiteError(str(path), None, "implementations", f"{impl} does not exist")


def fixtures_problem(path: Path, fixtures: Path) -> str | None:
    """Why a fixtures folder cannot seed a sample's working root, or None. It must lie within the
    suite file's folder or the one above it (where the built-in suites keep theirs), and every
    symbolic link in it must stay inside it: the root is a copy a tool may read and write, and a
    link to /etc/hostname (or `fixtures: ../../../etc`) once gave the MCP server the real files."""
    home = path.resolve().parent
    root = fixtures.resolve()
    if root != home.parent and home.parent not in root.parents:
        return f"{fixtures} is outside the suite's folder and the folder above it"
    for folder, dirs, files in os.walk(root):  # links are not followed: each is checked instead
        for name in dirs + files:
            entry = Path(folder) / name
            if not entry.is_symlink():
                continue
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError):  # a loop, or a dangling link
                return f"{entry} is a symbolic link that loops or leads nowhere"
            if target != root and root not in target.parents:
                return f"{entry} is a symbolic link to {target}, outside the fixtures folder"
    return None


def suite_relative(path: Path, value: str) -> Path:
    """A folder named in a suite's MCP server (`fixtures`, `cwd`), relative to the suite file."""
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else path.parent / candidate


def resolve_implementations(path: Path, suite: Suite) -> Path:
    """`implementations` is relative to the suite file, or to its parent `suites/` folder's parent."""
    assert suite.implementations
    if suite.mcp is not None:
        raise EvalkitError(f"{path}: its tools run on an MCP server, not on a Python file")
    candidate = Path(suite.implementations)
    if candidate.is_absolute():
        return candidate
    for base in (path.parent, path.parent.parent, path.parent.parent.parent):
        if (base / candidate).is_file():
            return base / candidate
    return path.parent / candidate


def find_suite(name_or_path: str) -> LoadedSuite:
    """`--suite` takes a built-in suite name or a path to a suite file."""
    as_path = Path(name_or_path)
    if as_path.suffix in SUITE_SUFFIXES or as_path.exists():
        return read_suite(as_path)
    # Top-level built-in suites win over imported ones of the same file name (suites/bfcl/parallel.jsonl).
    for path in sorted(suite_paths(), key=lambda p: (len(p.parts), str(p))):
        if path.stem == name_or_path:
            return read_suite(path)
    for path in suite_paths():
        loaded = read_suite(path)
        if loaded.suite.name == name_or_path:
            return loaded
    known = ", ".join(sorted(p.stem for p in suite_paths())) or "none"
    raise EvalkitError(f"no suite named {name_or_path!r} (built-in suites: {known})")


def same_suite(name: str, path: str, sha256: str, extra_dirs: Sequence[Path] = ()) -> LoadedSuite | None:
    """The suite file a run used (a header's SuiteRef), if the very same file (same SHA-256) is still
    at hand: at its recorded path, among the built-in suites (its name's file first), or by its
    file name in `extra_dirs` (e.g. a folder of imported suites). None when it changed or is gone.
    Files are hashed before they are parsed: only the one that matches is read as a suite."""
    filename = Path(path).name

    def candidates() -> Iterator[Path]:
        yield Path(path)
        # As find_suite looks: a built-in file named after the suite, top-level ones first, then the rest.
        yield from sorted(suite_paths(), key=lambda p: (p.stem != name, len(p.parts), str(p)))
        yield from (Path(d) / filename for d in extra_dirs)

    for candidate in candidates():
        try:
            if suite_digest(candidate.read_bytes()) == sha256:
                return read_suite(candidate)
        except Exception:  # noqa: BLE001 - a missing or broken file is simply not the same suite
            continue
    return None


def default_suites() -> list[LoadedSuite]:
    """What `evalkit run` runs with no --suite: every built-in suite at the top of suites/ (not imports)."""
    directory = builtin_dir()
    return [read_suite(p) for p in sorted(directory.glob("*")) if p.suffix in SUITE_SUFFIXES]


def sample_cases(cases: list[Case], n: int | None, seed: int = 0) -> list[Case]:
    """n of the cases drawn at random, in suite order; all of them when n is None.

    Each case's rank is a hash of the seed and its id, not a random.Random stream, so the draw
    does not depend on the order or number of the other cases: every model, format and shard
    gets the same subset, and a case added to the suite later does not reshuffle the rest.
    """
    if n is None or n >= len(cases):
        return list(cases)
    drawn = sorted(cases, key=lambda c: hashlib.sha256(f"{seed}:{c.id}".encode()).digest())[:n]
    chosen = {id(c) for c in drawn}
    return [c for c in cases if id(c) in chosen]


def select_cases(suite: Suite, tags: list[str] | None = None) -> list[Case]:
    if not tags:
        return list(suite.cases)
    wanted = set(tags)
    return [c for c in suite.cases if wanted & set(c.tags)]
