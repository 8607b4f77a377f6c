"""The anytime-valid statistics of --until-decided (evalkit/stopping/sequential.py) and the pure
parts of its schedule: closed forms against direct computation, the supermartingale property,
and the guarantee itself on a small fixed-seed simulation (benchmarks/bench_sequential.py runs
the large one)."""

from __future__ import annotations

import math
import random

import pytest

from evalkit.stopping.schedule import CaseTally, case_order, round_sizes, shared_scores
from evalkit.stopping.sequential import (
    confidence_bounds, floor_test, log_e_value, pair_test, settle, count_tests,
)
from evalkit.schema import Sample


def mixture_by_integration(successes: float, failures: float, null: float, steps: int = 20000) -> float:
    """The Beta(1, 1) mixture of likelihood ratios, integrated numerically (midpoint rule)."""
    total = 0.0
    for i in range(steps):
        p = (i + 0.5) / steps
        total += p ** successes * (1 - p) ** failures
    return total / steps / (null ** successes * (1 - null) ** failures)


@pytest.mark.parametrize("s,f,null", [(10, 0, 0.5), (7, 3, 0.5), (2.5, 4.5, 0.5), (30, 3, 0.8), (3, 12, 0.8)])
def test_the_closed_form_is_the_mixture(s, f, null):
    assert math.exp(log_e_value(s, f, null)) == pytest.approx(mixture_by_integration(s, f, null), rel=1e-3)


def test_ten_one_sided_discordant_cases_are_needed_at_alpha_005():
    # 2^w / (w + 1) >= 20 first at w = 8: the mixture SPRT's price for looking after every case.
    assert math.exp(log_e_value(7, 0)) < 20 <= math.exp(log_e_value(8, 0))
    assert pair_test("a", "b", [1] * 8, [0] * 8).p(1) < 0.05 < pair_test("a", "b", [1] * 7, [0] * 7).p(1)


def test_each_step_is_a_supermartingale_factor_under_the_null():
    # For any past and any distribution of the next case's d with mean 0 (here: d in {-1, -1/2,
    # 0, 1/2, 1}, symmetric or not), E[E_{n+1} / E_n] <= 1.
    values = [-1.0, -0.5, 0.0, 0.5, 1.0]
    rng = random.Random(3)
    for _ in range(200):
        wins, losses = rng.uniform(0, 20), rng.uniform(0, 20)
        weights = [rng.random() for _ in values]
        mean = sum(w * v for w, v in zip(weights, values)) / sum(weights)
        # move mass to make the mean 0: mix with the point mass at the opposite end
        end = -1.0 if mean > 0 else 1.0
        t = mean / (mean - end) if mean != 0 else 0.0
        dist = [(v, (1 - t) * w / sum(weights)) for v, w in zip(values, weights)] + [(end, t)]
        assert sum(v * q for v, q in dist) == pytest.approx(0.0, abs=1e-12)
        now = log_e_value(wins, losses)
        expected = sum(q * math.exp(log_e_value(wins + max(v, 0), losses + max(-v, 0)) - now) for v, q in dist)
        assert expected <= 1 + 1e-9


def test_ties_change_nothing_and_the_direction_is_the_better_option():
    with_ties = pair_test("a", "b", [1, 1, 0, 1, 0], [0, 1, 0, 1, 0])
    assert (with_ties.wins, with_ties.losses) == (1, 0)
    assert with_ties.log_e == pytest.approx(log_e_value(1, 0))
    assert pair_test("a", "b", [0.5, 0.0], [1.0, 1.0]).diff == pytest.approx(-0.75)


def test_confidence_bounds_hold_the_mean_and_shrink_with_cases():
    low10, high10 = confidence_bounds([1, 0] * 5, 0.05)
    low100, high100 = confidence_bounds([1, 0] * 50, 0.05)
    assert low10 < low100 < 0.5 < high100 < high10
    # Every m inside has an e-value below 1/alpha; just outside, at or above it.
    for m, inside in ((low100 + 1e-6, True), (high100 - 1e-6, True), (low100 - 1e-3, False), (high100 + 1e-3, False)):
        assert (log_e_value(50, 50, m) < math.log(20)) is inside


def test_an_option_is_clear_of_the_floor_only_when_its_interval_is():
    scores = [1] * 30 + [0] * 2  # 94% on 32 cases
    low, _high = confidence_bounds(scores, 0.05)
    for floor in (low - 0.02, low + 0.02):
        assert floor_test("a", scores, floor).clear(1, 0.05) is (floor < low)


def test_settle_far_better_option_is_the_pick():
    result = settle({"native": [0] * 12, "default": [1] * 12}, floor=None)
    assert (result.kind, result.pick, result.tests) == ("best", "default", 1)
    assert result.evidence() == "default beats native by 100 points; anytime-valid p < 0.01"


def test_settle_identical_options_stay_open():
    scores = [1, 0, 1, 1] * 30
    assert settle({"a": scores, "b": list(scores)}, floor=0.5).kind == "open"


def test_settle_with_a_floor_needs_the_winner_clear_above_it():
    # 12 of 12 beats 0 of 12, but 12 cases cannot show accuracy above 80%.
    assert settle({"a": [1] * 12, "b": [0] * 12}, floor=0.8).kind == "open"
    result = settle({"a": [1] * 40, "b": [0] * 40}, floor=0.8)
    assert (result.kind, result.pick, result.tests) == ("best", "a", 3)


def test_settle_none_reaches_the_floor_and_the_closest_is_named():
    result = settle({"a": [1, 0] * 30, "b": [0] * 60}, floor=0.9)
    assert (result.kind, result.pick) == ("none", "a")
    assert "b is below the 90% floor" in result.evidence()


def test_an_option_below_the_floor_is_out_without_being_beaten():
    # c is tied with b but both are clear below the floor; a is clear above and beats neither by
    # much on b: a is still the pick since b and c are ruled out by the floor.
    a = [1] * 60
    b = [1, 0, 0] * 20
    result = settle({"a": a, "b": b, "c": list(b)}, floor=0.7)
    assert (result.kind, result.pick, result.tests) == ("best", "a", count_tests(3, 0.7))


def test_case_order_is_fixed_by_seed_and_independent_of_input_order():
    cases = [("s", f"c{i}") for i in range(20)]
    assert case_order(cases, 1) == case_order(list(reversed(cases)), 1)
    assert case_order(cases, 1) != case_order(cases, 2)
    assert sorted(case_order(cases + cases[:3], 0)) == sorted(cases)


def test_round_sizes_grow_and_end_at_the_total():
    assert round_sizes(127) == [10, 15, 23, 35, 53, 80, 120, 127]
    assert round_sizes(4) == [4]
    assert round_sizes(10) == [10]


def sample(case_id: str, fmt: str, repeat: int, correct: bool, error: str | None = None) -> Sample:
    return Sample(suite="s", case_id=case_id, format=fmt, repeat=repeat, model="m", call_correct=correct, error=error)


def test_a_case_is_one_cluster_and_a_redone_error_replaces_the_error():
    tally = CaseTally(lambda s: s.format).add_all([
        sample("c1", "native", 0, True), sample("c1", "native", 1, False),  # repeats: one case, 1/2
        sample("c2", "native", 0, False, error="timeout"), sample("c2", "native", 0, True),  # redone
        sample("c3", "native", 0, True, error="timeout"),  # not scored yet
        sample("c1", "default", 0, True), sample("c2", "default", 0, True), sample("c3", "default", 0, True),
    ])
    scores = tally.scores()
    assert scores["native"] == {("s", "c1"): 0.5, ("s", "c2"): 1.0}
    shared = shared_scores(scores, ["native", "default"], [("s", "c3"), ("s", "c2"), ("s", "c1")])
    assert shared == {"native": [1.0, 0.5], "default": [1.0, 1.0]}


def simulate_null(sweeps: int, cases: int, seed: int, floor: float | None) -> float:
    """Share of simulated sweeps of two equally good options (each case: both right with its own
    difficulty, independently) that declare a winner at any round."""
    rng = random.Random(seed)
    sizes = round_sizes(cases)
    wrong = 0
    for _ in range(sweeps):
        difficulty = [rng.random() for _ in range(cases)]
        a = [float(rng.random() < d) for d in difficulty]
        b = [float(rng.random() < d) for d in difficulty]
        for size in sizes:
            result = settle({"a": a[:size], "b": b[:size]}, floor=floor)
            if result.kind == "best" and floor is None:
                wrong += 1
                break
    return wrong / sweeps


def test_the_null_rarely_declares_a_winner():
    # Deterministic (fixed seed). The guarantee is share <= alpha in expectation; with 300 sweeps
    # the binomial standard error at 0.05 is 0.0126, so 0.05 + 3 SE is a bound a correct test
    # meets and one that looked naively after every round (about 0.12-0.15 here) does not.
    share = simulate_null(300, 120, seed=11, floor=None)
    assert share <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)


def test_the_simulation_can_fail_a_test_that_peeks():
    # The same simulation, judged by a fixed-sample test applied after every round (two-sided
    # exact sign test at 0.05): it declares winners far more often than alpha. So the check above
    # can fail.
    rng = random.Random(11)
    wrong = 0
    for _ in range(300):
        difficulty = [rng.random() for _ in range(120)]
        a = [rng.random() < d for d in difficulty]
        b = [rng.random() < d for d in difficulty]
        for size in round_sizes(120):
            w = sum(1 for x, y in zip(a[:size], b[:size]) if x and not y)
            n = w + sum(1 for x, y in zip(a[:size], b[:size]) if y and not x)
            tail = sum(math.comb(n, k) for k in range(0, min(w, n - w) + 1)) / 2 ** n if n else 1.0
            if 2 * tail < 0.05:
                wrong += 1
                break
    assert wrong / 300 > 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)


def test_an_open_settlement_says_what_is_missing():
    far = settle({"native": [0.0] * 20, "default": [1.0, 1.0, 1.0, 0.0] * 5}, floor=0.8)
    assert far.kind == "open" and far.missing() == "default at 75% is not clear of the 80% floor"
    close = settle({"a": [1.0] * 13 + [0.0] * 7, "b": [1.0] * 20}, floor=None)  # 7 discordant: 2^7 / 8 < 20
    assert close.missing() == "b vs a: 35 points apart, anytime-valid p = 0.062"


def test_with_distractors_the_smallest_count_is_scored_as_the_recommendation_does():
    def at(count: int, correct: bool) -> Sample:
        return Sample(suite="s", case_id="c1", format="native", repeat=0, model="m", call_correct=correct,
                      distractors=count)

    tally = CaseTally(lambda s: s.format).add_all([at(8, False), at(0, True), at(32, False)])
    assert tally.scores() == {"native": {("s", "c1"): 1.0}}
