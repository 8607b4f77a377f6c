"""What a CI job needs from a finished run: the exit-code gates (`--max-error-rate`,
`--fail-under`) and a JUnit XML file (`--junit`), one testcase per sample.

Exit codes of `evalkit run`: 0 the run is done and passed its gates; 1 a gate failed (too many
error samples, or a call accuracy under --fail-under); 2 bad input or a server that cannot be
used (nothing run); 128+N stopped by signal N (finish with --resume).
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .rundir import read_results, read_samples
from .schema import Sample

DEFAULT_MAX_ERROR_RATE = 0.10




def gate_failures(run_dir: Path, max_error_rate: float, fail_under: float | None) -> list[str]:
    """One line per gate the run failed; empty when it passed them all. Read from results.json
    (its overall rows count the scored samples and the errors apart), never the samples."""
    from .aggregate import is_overall  # here: a run imports no reporting before its first request

    results = read_results(run_dir)
    if results is None:
        return []
    lines = []
    overall = [agg for agg in results.aggregates if is_overall(agg)]
    errors = sum(agg.errors for agg in overall)
    total = errors + sum(agg.n for agg in overall)
    if total and errors / total > max_error_rate:
        lines.append(f"{run_dir.name}: {errors} of {total} samples are errors ({errors / total:.0%}), "
                     f"over --max-error-rate {max_error_rate:.0%}; see the `error` field in samples.jsonl")
    if fail_under is not None:
        for agg in overall:
            if agg.call_accuracy is None or agg.call_accuracy < fail_under:
                got = "no scored samples" if agg.call_accuracy is None else f"{agg.call_accuracy:.3f}"
                lines.append(f"{agg.model} [{agg.format}]: call accuracy {got}, under --fail-under {fail_under:g}")
    return lines


def write_junit(run_dirs: list[Path], path: Path) -> None:
    """JUnit XML: a testsuite per run, a testcase per sample (the latest of each key); a sample
    that called wrongly is a failure, one the server never answered an error, each with the
    failure kind and detail as the message."""
    root = ET.Element("testsuites", name="evalkit")
    for run_dir in run_dirs:
        samples = sorted(_verdicts(run_dir).values(), key=lambda s: s.key())
        suite = ET.SubElement(root, "testsuite", name=run_dir.name, tests=str(len(samples)),
                              failures=str(sum(1 for s in samples if s.error is None and not s.call_correct)),
                              errors=str(sum(1 for s in samples if s.error is not None)))
        for sample in samples:
            _testcase(suite, sample)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _verdicts(run_dir: Path) -> dict:
    """The latest sample of each key with only what a testcase shows (a run's samples hold whole
    requests and replies: never all of them at once)."""
    latest = {}
    for sample in read_samples(run_dir):
        latest[sample.key()] = Sample.model_construct(**{f: getattr(sample, f) for f in TESTCASE_FIELDS})
    return latest


TESTCASE_FIELDS = ("suite", "case_id", "format", "repeat", "model", "distractors", "latency_s", "error",
                   "call_correct", "failure_kind", "failure_detail")


def _testcase(suite: ET.Element, sample: Sample) -> None:
    name = sample.case_id + (f" #{sample.repeat}" if sample.repeat else "")
    if sample.distractors is not None:
        name += f" +{sample.distractors} distractors"
    case = ET.SubElement(suite, "testcase", classname=f"{sample.model}.{sample.suite}.{sample.format}", name=name,
                         time=f"{sample.latency_s or 0:.3f}")
    if sample.error is not None:
        ET.SubElement(case, "error", type="error", message=_clean(sample.error))
    elif not sample.call_correct:
        kind = sample.failure_kind or "wrong"
        message = f"{kind}: {sample.failure_detail}" if sample.failure_detail else kind
        ET.SubElement(case, "failure", type=kind, message=_clean(message))


def _clean(text: str) -> str:
    # XML 1.0 cannot hold most control characters (a model's reply may carry them).
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)[:2000]
