"""Driving `--until-decided`: a one-model run's formats in rounds (`Rounds`), and a sweep's
rounds across its members (`job_order`, `settle_sweep`). What is run in which order is
`schedule`'s; whether to stop is `sequential`'s; this module feeds one to the other and keeps
decision.json up to date after every round, so a stopped or interrupted run says where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..dispatch import run_jobs
from ..jobs import Endpoint, Job, RunContext
from ..rundir import read_header, read_samples, write_model
from ..schema import Header, Sample, Stopping
from ..toolboxes import Toolboxes
from .schedule import DECISION, CaseId, CaseTally, case_order, evaluate, round_sizes, stopping

class Rounds:
    """One run's jobs (its formats are the options) in rounds of the fixed case order."""

    def __init__(self, run_dir: Path, header: Header, planned: Sequence[Job], jobs: list[Job]):
        """`planned`: every job of the run, done or not (the order covers all its cases); `jobs`:
        those still to do."""
        assert header.until_decided is not None
        self.run_dir, self.header, self.jobs = run_dir, header, jobs
        self.order = job_order(planned, header.settings.seed)
        self.spec = header.until_decided
        self.tally = CaseTally(lambda s: s.format).add_all(read_samples(run_dir))

    async def run(self, endpoints: list[Endpoint], ctx: RunContext, on_sample: Callable[[Sample], None]) -> None:
        def record(sample: Sample) -> None:
            on_sample(sample)  # written first: a sample the log refuses is not counted either
            self.tally.add(sample)

        sizes = round_sizes(len(self.order))
        place = {case: i for i, case in enumerate(self.order)}
        done = 0
        for number, size in enumerate(sizes, 1):
            batch = [j for j in self.jobs if done <= place[(j.loaded.suite.name, j.case.id)] < size]
            if batch:
                # run_jobs stops the run's MCP servers at its end: each round starts its own.
                ctx.toolboxes = Toolboxes()
                await run_jobs(batch, endpoints, ctx, record)
            done = size
            result = self.settle(size, number)
            if result.settled:
                return

    def settle(self, run: int, rounds: int) -> Stopping:
        spec = self.spec
        settlement = evaluate(self.tally.scores(), self.header.formats, self.order, run, spec.min_accuracy, spec.alpha)
        result = stopping(settlement, run, len(self.order), rounds)
        write_model(self.run_dir / DECISION, result)
        return result


# ---------------------------------------------------------------- a sweep's rounds


def job_order(jobs: Sequence[Job], seed: int | None) -> list[CaseId]:
    """The fixed order of the cases of `jobs` (schedule.case_order)."""
    return case_order(((j.loaded.suite.name, j.case.id) for j in jobs), seed)


def option_label(sample: Sample) -> str:
    """A sweep's option: model x format, as the comparison labels it."""
    return f"{sample.model} [{sample.format}]"


def settle_sweep(sweep_dir: Path, run_dirs: Sequence[Path], order: list[CaseId], run: int, rounds: int,
                 alpha: float, floor: float | None) -> Stopping:
    """The settlement over every member's samples on the first `run` cases; kept as decision.json."""
    tally = CaseTally(option_label)
    options: list[str] = []
    for run_dir in run_dirs:
        header = read_header(run_dir)
        options += [f"{header.model} [{fmt}]" for fmt in header.formats]
        tally.add_all(read_samples(run_dir))
    result = stopping(evaluate(tally.scores(), options, order, run, floor, alpha), run, len(order), rounds)
    write_model(Path(sweep_dir) / DECISION, result)
    return result
