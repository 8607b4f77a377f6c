"""Every `--help` in one style: a description per subcommand, defaults shown, one metavar
vocabulary, `run`'s flags in groups; and "did you mean" for mistyped flags and subcommands."""

from __future__ import annotations

import argparse
import re

import pytest

from evalkit.cli import build_parser, main
from evalkit.clihelp import RUN_GROUPS, Formatter, all_parsers

PARSERS = list(all_parsers(build_parser()))
# The metavar vocabulary: the kind of value, in upper case, singular.
METAVARS = {"MODEL", "URL", "FILE", "DIR", "PATH", "SUITE", "FORMAT", "TAG", "N", "T", "SECONDS", "FRACTION",
            "I/N", "PORT", "NAME", "RUN_DIR", "CATEGORY", "COMMAND", "SOURCE", "JSON", "KEY", "HEADER"}


def test_there_are_many_subcommands():
    names = {p.prog for p in PARSERS}
    assert {"evalkit run", "evalkit view", "evalkit schema", "evalkit merge", "evalkit probe"} <= names
    assert len(PARSERS) > 15


@pytest.mark.parametrize("parser", PARSERS, ids=[p.prog for p in PARSERS])
def test_every_command_has_a_description_and_shows_its_defaults(parser):
    assert parser.description and len(parser.description) > 15, parser.prog
    assert parser.formatter_class is Formatter
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = formatter._expand_help(action) if action.help else formatter._get_help_string(action)
        assert "default" in formatter._get_help_string(action), (parser.prog, action.option_strings, text)


@pytest.mark.parametrize("parser", PARSERS, ids=[p.prog for p in PARSERS])
def test_one_metavar_style(parser):
    for action in parser._actions:
        if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
            continue
        if action.choices and action.metavar is None:
            continue  # shown as {a,b}: the choices themselves
        assert action.metavar in METAVARS, (parser.prog, action.option_strings or action.dest, action.metavar)


def test_run_flags_are_grouped(capsys):
    run = next(p for p in PARSERS if p.prog == "evalkit run")
    titles = [g.title for g in run._action_groups]
    assert titles[-1] == "other options" and titles[1:1 + len(RUN_GROUPS)] == list(RUN_GROUPS)
    (other,) = [g for g in run._action_groups if g.title == "other options"]
    assert [a.option_strings for a in other._group_actions] == [["-h", "--help"]], \
        "a new run flag belongs in a group of evalkit.clihelp.RUN_GROUPS"
    listed = [flag for flags in RUN_GROUPS.values() for flag in flags]
    assert len(listed) == len(set(listed))
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.index("what to evaluate:") < out.index("\n  --model MODEL") < out.index("which cases:")
    assert "--suite SUITE" in out and "SUITES" not in out and "BASE_URL" not in out


def test_serve_shows_its_defaults(capsys):
    assert main(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--ctx N context tokens per slot (default: 4096)" in out
    assert "--parallel N requests decoded concurrently (slots) (default: 2)" in out


@pytest.mark.parametrize("argv, hint", [
    (["run", "--modle", "x"], "did you mean --model?"),
    (["run", "--base-ulr", "http://127.0.0.1:1/v1"], "did you mean --base-url?"),
    (["recommend", "runs", "--min-acuracy", "0.9"], "did you mean --min-accuracy?"),
    (["veiw"], "did you mean view?"),
    (["reprot", "x"], "did you mean report?"),
    (["import", "bfc"], "did you mean bfcl?"),
])
def test_did_you_mean(argv, hint, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert hint in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_suggestion_for_nonsense(capsys):
    assert main(["run", "--zzzzzz"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err
    assert main(["qqqqq"]) == 2
    assert "did you mean" not in capsys.readouterr().err
