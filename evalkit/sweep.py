"""`evalkit run --model A --model B ...`: one run per model, in turn, then a comparison.

A sweep directory holds everything of one sweep:

    <out>/sweep-<timestamp>-<hex>/
        sweep.json          the models, the run options they share, each member's run directory
        <run_id of A>/      an ordinary run directory (header.json, samples.jsonl, results.json, report)
        <run_id of B>/
        report.md, failures.md, report.html, fig_*.png, leaderboard.csv   the comparison of all members

Members run one at a time (a bundled name starts the embedded engine for its run and stops it
after; two engines would fight over the cores). sweep.json names a member's run directory as
soon as it exists, so `evalkit run --resume SWEEP_DIR` after Ctrl-C or a crash resumes the
member that was running, starts those that never did, and rewrites the comparison.
`evalkit report SWEEP_DIR` and `evalkit recommend SWEEP_DIR` read the members like a folder of runs.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .access import Access, key_from_environment
from .engine.pool import EnginePool
from .errors import EvalkitError
from .rundir import HEADER, now_iso, print_summary, run_lock, write_model
from .schema import RunConfig, Sweep, SweepMember
from .session import RunOptions, check_options, execute

SWEEP = "sweep.json"


def is_sweep(path: Path) -> bool:
    return (Path(path) / SWEEP).is_file()


def read_sweep(sweep_dir: Path) -> Sweep:
    path = Path(sweep_dir) / SWEEP
    try:
        return Sweep.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise EvalkitError(f"{path}: not a valid sweep file ({exc.errors()[0]['msg']})") from None


def members_of(config: RunConfig) -> list[SweepMember]:
    """A config file's options as sweep members (their headers stay in the config file)."""
    return [
        SweepMember(model=o.model, option=i, base_url=o.base_url, api_key_env=o.api_key_env,
                    extra_body=o.extra_body, formats=o.formats)
        for i, o in enumerate(config.options)
    ]


def start(models: list[str] | list[SweepMember], options: RunOptions, config: Path | None = None) -> Path:
    """Create the sweep directory and its sweep.json; nothing runs yet. `models`: names given
    with --model, or the members of `config`."""
    members = [m if isinstance(m, SweepMember) else SweepMember(model=m) for m in models]
    check_options(options)  # before the sweep directory exists: a bad --out or --base-url leaves nothing
    if options.shard:
        # Members run one after another on this machine; a shard of a sweep would have nothing to merge with.
        raise EvalkitError("--shard splits one model's run; shard each model's run on its own "
                           "(evalkit run --model M --shard i/n)")
    named = [(m.model, m.base_url) for m in members]
    duplicates = sorted({m for m, url in named if named.count((m, url)) > 1})
    if duplicates:
        raise EvalkitError(f"--model {duplicates[0]} is given twice; a sweep runs each model once")
    sweep_shape = Sweep(evalkit_version=__version__, sweep_id="", started_at="", members=members,
                        base_urls=list(options.base_urls), formats=list(options.formats), settings=options.settings,
                        config=str(config) if config else None)
    _check_distinct_weights(sweep_shape, options)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    sweep_id = f"sweep-{stamp}-{secrets.token_hex(2)}"
    sweep_dir = options.out / sweep_id
    sweep_dir.mkdir(parents=True, exist_ok=False)
    sweep = Sweep(
        evalkit_version=__version__, sweep_id=sweep_id, started_at=now_iso(),
        members=members, config=str(config.resolve()) if config else None, allow_unlisted=options.allow_unlisted,
        base_urls=list(options.base_urls), suites=list(options.suites), formats=list(options.formats),
        tags=list(options.tags), limit=options.limit, sample=options.sample, settings=options.settings,
        concurrency_given=options.concurrency_given, cache=options.cache,
        max_parallel_tool_calls=options.max_parallel_tool_calls, distractors=list(options.distractors),
        tool_cost=options.tool_cost, probe=options.probe, engine_ctx=options.engine_ctx,
        engine_threads=options.engine_threads, report=options.report, until_decided=options.until_decided,
    )
    write_model(sweep_dir / SWEEP, sweep)
    return sweep_dir


def member_options(sweep: Sweep, sweep_dir: Path, member: SweepMember, quiet: bool,
                   access: Access | None = None) -> RunOptions:
    """The run options of one member: the sweep's, for its model, writing inside the sweep directory;
    a config option's endpoint, key, extra body, headers and formats over the sweep's own."""
    settings = sweep.settings.model_copy(deep=True)  # `execute` may set the concurrency per server
    if member.extra_body:
        settings.extra_body = {**(settings.extra_body or {}), **member.extra_body}
    return RunOptions(
        model=member.model, base_urls=[member.base_url] if member.base_url else list(sweep.base_urls),
        suites=list(sweep.suites), formats=list(member.formats or sweep.formats),
        tags=list(sweep.tags), limit=sweep.limit, sample=sweep.sample, settings=settings,
        concurrency_given=sweep.concurrency_given, out=sweep_dir, cache=sweep.cache,
        max_parallel_tool_calls=sweep.max_parallel_tool_calls, distractors=list(sweep.distractors),
        tool_cost=sweep.tool_cost, probe=sweep.probe, report=sweep.report,
        engine_ctx=sweep.engine_ctx, engine_threads=sweep.engine_threads, quiet=quiet, resume_hint=sweep_dir,
        access=member_access(sweep, member, access or Access()), allow_unlisted=sweep.allow_unlisted,
    )


def member_access(sweep: Sweep, member: SweepMember, access: Access) -> Access:
    """The command line's key and headers, with the member's config option over them: its key's
    variable, and its headers (read from the config file, which alone holds their values)."""
    key = key_from_environment(member.api_key_env) if member.api_key_env else access.api_key
    headers = dict(access.headers)
    config = sweep.config
    if member.option is not None and config:
        from .runconfig import read_config

        options = read_config(Path(config)).options
        if member.option >= len(options) or options[member.option].model != member.model:
            raise EvalkitError(f"{config}: changed since the sweep started (option #{member.option + 1} is no "
                               f"longer {member.model!r}); start a new sweep")
        headers.update(options[member.option].headers or {})
    return Access(api_key=key, headers=headers)


def _check_distinct_weights(sweep: Sweep, options: RunOptions) -> None:
    """Two members that resolve to the same served weights compare a model with itself (llama.cpp
    answers every name with its one model): refused in one line, before anything runs."""
    from .engine.discover import normalise_base_url, resolve
    from .identity import describe, served_identity, weights_of
    from .session import serving_facts

    seen: dict[tuple, str] = {}
    for member in sweep.members:
        member_opts = member_options(sweep, Path("."), member, quiet=True, access=options.access)
        urls = member_opts.base_urls
        if len(urls) != 1:
            continue  # several endpoints share one model's work; a bundled model has its own file
        try:
            resolved = resolve(member.model, urls[0], api_key=member_opts.access.api_key)
        except EvalkitError:
            continue  # the member's own run says what is wrong with it
        url = normalise_base_url(urls[0])
        identity = served_identity(serving_facts(url, resolved.model_id, member_opts.access.api_key))
        weights = weights_of(identity, url)
        if weights in seen:
            raise EvalkitError(f"--model {seen[weights]!r} and --model {member.model!r} resolve to the same served "
                               f"weights on {url} ({describe(identity)}); a sweep would compare a model with itself")
        seen[weights] = member.model


def run(sweep_dir: Path, quiet: bool = False, access: Access | None = None) -> list[Path]:
    """Run (or finish) every member in order, each with its report; returns their run directories."""
    sweep_dir = Path(sweep_dir)
    # One runner per sweep directory: two `run --resume SWEEP_DIR` at once each started the member
    # not yet begun, in two folders, and sweep.json named only one of them.
    with run_lock(sweep_dir):
        return _run_members(sweep_dir, read_sweep(sweep_dir), quiet, access)


def _run_members(sweep_dir: Path, sweep: Sweep, quiet: bool, access: Access | None) -> list[Path]:
    """Every member in turn, each with its report; with --until-decided, in rounds of the same
    cases until the answer is settled (then the reports once the rounds are over)."""
    if sweep.until_decided is not None:
        run_dirs = _rounds(sweep_dir, sweep, quiet, access)
        for run_dir in run_dirs:
            _member_done(sweep, run_dir)
        return run_dirs
    run_dirs = []
    for number, member in enumerate(sweep.members, 1):
        _say(quiet, f"sweep {sweep.sweep_id}: model {number} of {len(sweep.members)}: {member.model}")
        run_dirs.append(_run_member(sweep_dir, sweep, member, quiet, access))
        _member_done(sweep, run_dirs[-1])
    return run_dirs


def _run_member(sweep_dir: Path, sweep: Sweep, member: SweepMember, quiet: bool, access: Access | None,
                cases: frozenset[tuple[str, str]] | None = None, engines: EnginePool | None = None) -> Path:
    options = replace(member_options(sweep, sweep_dir, member, quiet, access), cases=cases, engines=engines)
    if member.run_dir and (sweep_dir / member.run_dir / HEADER).is_file():
        options = replace(options, resume=sweep_dir / member.run_dir)
    else:
        def record(run_dir: Path, member: SweepMember = member) -> None:
            member.run_dir = run_dir.name
            write_model(sweep_dir / SWEEP, sweep)

        options = replace(options, on_run_dir=record)
    return execute(options)


def _member_done(sweep: Sweep, run_dir: Path) -> None:
    if sweep.report:
        from .report.write import write_run_report

        write_run_report(run_dir)
    print_summary(run_dir)
    print()


def _rounds(sweep_dir: Path, sweep: Sweep, quiet: bool, access: Access | None) -> list[Path]:
    """--until-decided: round r runs the first n_r cases of the fixed order on every member in
    turn, then asks whether the recommendation is settled (evalkit/stopping)."""
    from .stopping.rounds import job_order, settle_sweep
    from .stopping.schedule import read_stopping, round_sizes
    from .jobs import plan
    from .session import load_suites

    spec = sweep.until_decided
    assert spec is not None
    every = plan(load_suites(sweep.suites), sweep.formats[:1], 1, sweep.tags or None, sweep.limit, sweep.sample,
                 sweep.settings.seed)
    order = job_order(every, sweep.settings.seed)
    sizes = round_sizes(len(order))
    before = read_stopping(sweep_dir)  # a resumed sweep: the rounds it finished are not asked again
    run_dirs = [sweep_dir / m.run_dir for m in sweep.members if m.run_dir]
    if before is not None and before.settled:
        return run_dirs
    # The members' embedded engines run from the first round to the last, each with its prompt
    # cache warm (engine.pool): not one model load and cold cache per member per round.
    with EnginePool() as engines:
        for number, size in enumerate(sizes, 1):
            if before is not None and size <= before.cases_run:
                continue
            run_dirs = []
            for index, member in enumerate(sweep.members, 1):
                _say(quiet, f"sweep {sweep.sweep_id}: round {number} (cases 1-{size} of {len(order)}): "
                            f"model {index} of {len(sweep.members)}: {member.model}")
                run_dirs.append(_run_member(sweep_dir, sweep, member, quiet, access, frozenset(order[:size]),
                                            engines))
            result = settle_sweep(sweep_dir, run_dirs, order, size, number, spec.alpha, spec.min_accuracy)
            _say(quiet, f"sweep {sweep.sweep_id}: {result.text}")
            if result.settled:
                break
    return run_dirs


def finish(sweep_dir: Path, run_dirs: list[Path]) -> None:
    """The comparison of every member, then the recommendation and the report's path, last."""
    from .stopping.schedule import read_stopping
    from .report.build import build_report
    from .report.model import load_run, make_entries
    from .report.recommend import Constraints, Recommendation, recommend_entries

    def card(rec: Recommendation) -> str:
        # The members may share no cases (e.g. an interrupted member with none yet): said, not raised.
        # The card's reasoning as bullets; its first line (the headline) comes last, beside the path.
        if rec.refused:
            return f"no recommendation: {rec.reason}"
        return "\n".join(f"  {title}: {text}" for title, text in rec.bullets())

    sweep = read_sweep(sweep_dir)
    spec = sweep.until_decided  # --until-decided: its floor is the card's, and the card says why it stopped
    constraints = Constraints() if spec is None else Constraints(min_accuracy=spec.min_accuracy)
    stopping = read_stopping(sweep_dir) if spec is not None else None
    stopped = f"--until-decided: {stopping.text}" if stopping is not None else None
    html = None
    if sweep.report:
        from .report.write import write_report

        # The runs are read once: the comparison holds the card `evalkit recommend` would print.
        report = build_report([load_run(d) for d in run_dirs], comparison=True, constraints=constraints,
                              stopped=stopped)
        _md, html = write_report(report, sweep_dir)
        rec: Recommendation | None = report.recommendation
    else:
        try:
            rec = recommend_entries(make_entries([load_run(d) for d in run_dirs]), constraints)
        except EvalkitError as exc:
            print(exc)
            rec = None
    if stopped:
        print(stopped)
    if rec is not None:
        print(card(rec))
    print(f"\nsweep directory: {sweep_dir}")
    if rec is not None and not rec.refused:
        print(rec.headline)
    if html is not None:
        print(f"report: {html}")


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
