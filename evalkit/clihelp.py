"""How every `--help` reads: one metavar style, defaults shown, a description for every subcommand,
`run`'s flags in groups, and "did you mean" for a mistyped flag or subcommand.

Applied once to the finished parser (`polish`), so a module adding a subcommand or a flag writes
plain argparse and still gets all of this; the tables below are the one place the style lives.
"""

from __future__ import annotations

import argparse
import difflib
import re
from pathlib import Path
from typing import Iterator

# `run`'s flags by what they are for (issue 24); a flag not listed stays under "other options",
# and tests/test_cli_help.py fails until it is placed (a flag a module puts in a group of its own
# stays there). Flags of branches not merged yet are listed already; an absent flag is skipped.
RUN_GROUPS: dict[str, list[str]] = {
    "what to evaluate": ["--model", "--base-url", "--base-url-file", "--probe"],
    "which cases": ["--suite", "--tag", "--limit", "--sample", "--seed", "--repeats", "--distractors", "--shard",
                    "--until-decided", "--min-accuracy"],
    "formats and requests": ["--format", "--tool-choice", "--temperature", "--max-tokens", "--no-stream",
                             "--concurrency", "--max-parallel-tool-calls", "--tool-cost"],
    "output": ["--out", "--resume", "--no-report", "--quiet", "--no-cache", "--cache"],
    "limits and safety": ["--timeout", "--deadline", "--retries", "--retry-after-cap", "--max-reply-chars",
                          "--max-arg-depth", "--max-int-bits", "--max-alias-nodes"],
    "embedded engine": ["--ctx", "--threads"],
}

# One metavar style: upper case, singular, naming the kind of value. By destination first...
DEST_METAVARS = {
    "base_url": "URL", "base_urls": "URL", "url": "URL", "model": "MODEL", "models": "MODEL",
    "suite": "SUITE", "suites": "SUITE", "run_dirs": "RUN_DIR", "shard": "I/N", "name": "NAME",
    "out": "DIR", "resume": "DIR", "dir": "DIR", "dirs": "DIR", "suite_dirs": "DIR", "base_url_file": "FILE", "port": "PORT",
    "temperature": "T", "seed": "N", "category": "CATEGORY", "config": "FILE", "junit": "FILE",
    "extra_body": "JSON", "api_key": "KEY", "headers": "HEADER",
}
# ... then by the value's type (argparse type functions are named for what they read).
TYPE_METAVARS = {"seconds": "SECONDS", "_seconds": "SECONDS", "rate": "FRACTION",
                 "int": "N", "float": "X"}


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[argparse._SubParsersAction, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield action, name, sub


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for _action, _name, sub in _subparsers(parser):
        yield from all_parsers(sub)


def _metavar(action: argparse.Action) -> str | None:
    if action.dest in DEST_METAVARS:
        return DEST_METAVARS[action.dest]
    type_name = getattr(action.type, "__name__", None)
    if action.type is Path:
        return "PATH"
    if type_name and type_name.startswith("whole number"):  # cliargs.whole_number(minimum)
        return "N"
    return TYPE_METAVARS.get(type_name or "")


class Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default: the help's own words when it names one,
    else "(default: ...)" from the value argparse has."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        default = action.default
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            shown = "off" if default is False else "on"
        elif default is None or default == []:
            shown = "none"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


def _group_run(parser: argparse.ArgumentParser) -> None:
    """RUN_GROUPS first, then groups a module made itself (e.g. issue 20's), then "other options"."""
    by_flag = {flag: action for action in parser._actions for flag in action.option_strings}
    general = parser._optionals
    own = [g for g in parser._action_groups if g not in (general, parser._positionals)]
    ours = []
    for title, flags in RUN_GROUPS.items():
        group = parser.add_argument_group(title)
        ours.append(group)
        for flag in flags:
            action = by_flag.get(flag)
            if action is not None and action in general._group_actions:
                general._group_actions.remove(action)
                group._group_actions.append(action)
    general.title = "other options"
    parser._action_groups[:] = [parser._positionals, *ours, *own, general]


def polish(parser: argparse.ArgumentParser) -> None:
    """Apply the style to `parser` and every subcommand below it."""
    for each in all_parsers(parser):
        for action, name, sub in _subparsers(each):
            if not sub.description:  # the one-line help of the subcommand list, as its description
                helps = {a.dest: a.help for a in action._choices_actions}
                sub.description = helps.get(name)
    for each in all_parsers(parser):
        each.formatter_class = Formatter
        for action in each._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue
            styled = _metavar(action)
            if styled and (action.option_strings or action.metavar is None or action.metavar.islower()):
                action.metavar = styled  # the table wins over a module's own spelling
            elif action.metavar is None and not action.choices:
                action.metavar = action.dest.upper()
    for _action, name, sub in _subparsers(parser):
        if name == "run":
            _group_run(sub)


# ---------------------------------------------------------------- did you mean


def _invoked(parser: argparse.ArgumentParser, args: list[str]) -> argparse.ArgumentParser:
    """The deepest subcommand parser the words on the command line name."""
    for action, name, sub in _subparsers(parser):
        if name in args:
            return _invoked(sub, args[args.index(name) + 1:])
    return parser


def suggestion(parser: argparse.ArgumentParser, args: list[str], message: str) -> str:
    """" (did you mean --model?)" for a mistyped flag or subcommand, else ""."""
    unknown = re.match(r"unrecognized arguments: (\S+)", message)
    if unknown:
        word = unknown.group(1).split("=", 1)[0]
        flags = [flag for action in _invoked(parser, args)._actions for flag in action.option_strings]
        close = difflib.get_close_matches(word, flags, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        options = re.findall(r"'([^']*)'", choice.group(2))
        close = difflib.get_close_matches(choice.group(1), options, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""
    return ""
