"""The guarantee of `--until-decided`, by simulation (issue 25): thousands of simulated sweeps.

    python benchmarks/bench_sequential.py [--sweeps 4000] [--seed 1]

Each simulated sweep has options with known accuracies on a suite of N cases. Every case has its
own difficulty u (uniform on [0, 1]); an option with accuracy a gets a case right when u < a, or,
on half of its cases chosen at random, when a fresh uniform draw of its own is below a. So every
option's accuracy is exactly a, and options agree on easy and hard cases as real models do
(correlated, not identical). The sweep runs `evalkit.stopping.schedule.round_sizes(N)` rounds and asks
`evalkit.stopping.sequential.settle` after each, exactly as `evalkit run --until-decided` does.

Reported per scenario:
- false winner: share of sweeps that declared a winner the truth does not support (with equal
  options: any winner; with a floor: an option recommended whose true accuracy is below it).
  The guarantee: at most alpha (0.05).
- settled early: share that stopped before the cases ran out; median cases run when stopped.
- agrees with full run: share whose final answer (the settled pick, or the full run's leader when
  the cases ran out) names the option with the full run's highest accuracy.

Pure computation (no server, no engine): machine load changes the time it takes, not the figures.
Results go to benchmarks/results/sequential.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evalkit.stopping.schedule import round_sizes  # noqa: E402
from evalkit.stopping.sequential import ALPHA, settle  # noqa: E402


SHARED = 0.5  # the share of an option's cases decided by the case's own difficulty


@dataclass
class Scenario:
    name: str
    accuracies: dict[str, float]
    cases: int
    floor: float | None


SCENARIOS = [
    Scenario("null: equal, no floor", {"a": 0.5, "b": 0.5}, 127, None),
    Scenario("null: equal 85%, 80% floor", {"a": 0.85, "b": 0.85}, 127, 0.8),
    Scenario("null: three equal, no floor", {"a": 0.6, "b": 0.6, "c": 0.6}, 127, None),
    Scenario("null: both at the 80% floor", {"a": 0.8, "b": 0.8}, 127, 0.8),
    Scenario("5 points", {"a": 0.55, "b": 0.5}, 127, None),
    Scenario("10 points", {"a": 0.6, "b": 0.5}, 127, None),
    Scenario("20 points", {"a": 0.6, "b": 0.4}, 127, None),
    Scenario("45 points (native vs default)", {"default": 0.65, "native": 0.2}, 127, None),
    Scenario("45 points, 39 cases", {"default": 0.65, "native": 0.2}, 39, None),
    Scenario("30 points, 80% floor", {"a": 0.95, "b": 0.65}, 127, 0.8),
    Scenario("30 points, 80% floor, 400 cases", {"a": 0.95, "b": 0.65}, 400, 0.8),
    Scenario("both below a 80% floor, 30 apart", {"a": 0.6, "b": 0.3}, 127, 0.8),
]


def simulate(s: Scenario, rng: random.Random) -> dict:
    sizes = round_sizes(s.cases)
    names = list(s.accuracies)
    true_best = max(s.accuracies.values())
    best_names = {n for n, a in s.accuracies.items() if a == true_best}
    equal = len(set(s.accuracies.values())) == 1
    false_winner = early = agree = 0
    stopped_at: list[int] = []
    sweeps = s_sweeps = 0
    for _ in range(ARGS.sweeps):
        difficulty = [rng.random() for _ in range(s.cases)]
        scores = {n: [float((d if rng.random() < SHARED else rng.random()) < a) for d in difficulty]
                  for n, a in s.accuracies.items()}
        full_means = {n: sum(v) / len(v) for n, v in scores.items()}
        full_best = max(full_means.values())
        result = None
        for size in sizes:
            result = settle({n: scores[n][:size] for n in names}, s.floor, ALPHA)
            if result.settled:
                break
        assert result is not None
        sweeps += 1
        if result.settled and size < s.cases:
            early += 1
            stopped_at.append(size)
        if result.kind == "best":
            pick_true = s.accuracies[result.pick]
            wrong = (equal or result.pick not in best_names
                     or (s.floor is not None and pick_true < s.floor))
            false_winner += wrong
        elif result.kind == "none":
            false_winner += any(a >= s.floor for a in s.accuracies.values())  # type: ignore[operator]
        pick = result.pick if result.settled else max(names, key=lambda n: full_means[n])
        agree += full_means[pick] == full_best
        s_sweeps += 1
    return {
        "scenario": s.name, "accuracies": s.accuracies, "cases": s.cases, "floor": s.floor, "sweeps": sweeps,
        "false_winner": false_winner / sweeps, "settled_early": early / sweeps,
        "median_cases_when_early": statistics.median(stopped_at) if stopped_at else None,
        "mean_cases_run": (sum(stopped_at) + (sweeps - early) * s.cases) / sweeps,
        "agrees_with_full_run": agree / sweeps,
    }


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sequential.json")
    ARGS = parser.parse_args()
    rng = random.Random(ARGS.seed)
    start = time.perf_counter()
    rows = [simulate(s, rng) for s in SCENARIOS]
    print(f"{'scenario':<36} {'cases':>5} {'false winner':>12} {'early':>6} {'median stop':>11} "
          f"{'mean run':>8} {'agrees':>6}")
    for r in rows:
        median = "-" if r["median_cases_when_early"] is None else f"{r['median_cases_when_early']:.0f}"
        print(f"{r['scenario']:<36} {r['cases']:>5} {r['false_winner']:>12.4f} {r['settled_early']:>6.1%} "
              f"{median:>11} {r['mean_cases_run']:>8.1f} {r['agrees_with_full_run']:>6.1%}")
    elapsed = time.perf_counter() - start
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(json.dumps({"alpha": ALPHA, "sweeps_per_scenario": ARGS.sweeps, "seed": ARGS.seed,
                                    "scenarios": rows, "seconds": round(elapsed, 1)}, indent=2) + "\n")
    print(f"\n{ARGS.sweeps} sweeps per scenario in {elapsed:.0f} s; {ARGS.out}")


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
