"""`evalkit run --config FILE.yaml`: the options of a sweep whose models need different endpoints,
keys or request options. Validated like a suite: a mistake is one line naming the file, the
option and the field.

    options:
      - model: qwen3-8b
        base_url: http://127.0.0.1:8000/v1
        api_key_env: VLLM_KEY
        extra_body: {chat_template_kwargs: {enable_thinking: false}, top_k: 20}
      - model: gpt-oss-20b
        base_url: http://gateway.internal/v1
        headers: {X-Team: evals}
        extra_body: {reasoning_effort: low}
        formats: [native]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .access import parse_header, reserved_body_keys
from .engine.discover import check_base_url
from .errors import EvalkitError
from .formats import get_format
from .schema import RunConfig


def read_config(path: Path) -> RunConfig:
    if not path.is_file():
        raise EvalkitError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EvalkitError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(raw, dict):
        raise EvalkitError(f"{path}: must be a mapping with `options:`, a list of options (model, base_url, ...)")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A typo (`optons`) also makes the real field look missing; name the typo, it is what to fix.
        unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
        raise EvalkitError(_one_line(path, raw, (unknown or errors)[0])) from None
    for number, option in enumerate(config.options, 1):
        _check_option(path, number, option.model_dump(exclude_none=True))
    return config


def _where(path: Path, raw: dict[str, Any], number: int) -> str:
    options = raw.get("options")
    entry = options[number - 1] if isinstance(options, list) and len(options) >= number else None
    model = entry.get("model") if isinstance(entry, dict) else None
    return f"{path}: option #{number}" + (f" (model {model!r})" if isinstance(model, str) else "")


def _one_line(path: Path, raw: dict[str, Any], error: dict[str, Any]) -> str:
    loc = list(error.get("loc", ()))
    where = f"{path}"
    if len(loc) >= 2 and loc[0] == "options" and isinstance(loc[1], int):
        where, loc = _where(path, raw, loc[1] + 1), loc[2:]
    field = ".".join(str(part) for part in loc) or "(root)"
    message = "unknown field" if error.get("type") == "extra_forbidden" else error.get("msg", "invalid")
    return f"{where}: field {field!r}: {message}"


def _check_option(path: Path, number: int, option: dict[str, Any]) -> None:
    where = f"{path}: option #{number} (model {option['model']!r})"
    try:
        if "base_url" in option:
            check_base_url(option["base_url"])
        for fmt in option.get("formats", []):
            get_format(fmt)
    except EvalkitError as exc:
        field = "base_url" if "--base-url" in str(exc) else "formats"
        raise EvalkitError(f"{where}: field {field!r}: {exc}") from None
    for name, value in option.get("headers", {}).items():
        try:
            parse_header(f"{name}: {value}")
        except ValueError as exc:  # argparse.ArgumentTypeError is a ValueError
            raise EvalkitError(f"{where}: field 'headers.{name}': {exc}") from None
    reserved = reserved_body_keys(option.get("extra_body", {}))
    if reserved:
        raise EvalkitError(f"{where}: field 'extra_body.{reserved[0]}': set by evalkit for every request; "
                           "leave it out")
