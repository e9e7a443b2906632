"""Reward-hacking monitors on synthetic metric streams (seeded): they fire on a KL spike, a KL
past the ceiling, a length climb the verifier does not follow, rising hedging and lists, and stay
silent on a calm run. No database."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training.monitors import (
    ALERT_KINDS,
    Alert,
    Monitor,
    MonitorThresholds,
    scan,
    text_stats,
)

STEPS = 200


def stream(seed: int = 0, steps: int = STEPS, **overrides) -> list[dict]:
    """A calm run: noisy but stationary KL around 1.5 nats, length around 200 tokens, verifier
    reward around 0.4, hedging around 1 per 100 words, a quarter of answers as lists (a batch of
    64). `overrides` replace a metric's noise-free level per step (an array of `steps` values), or
    drop it with None."""
    rng = np.random.default_rng(seed)
    level = {
        "kl": np.full(steps, 1.5), "length": np.full(steps, 200.0), "verifier": np.full(steps, 0.4),
        "hedging": np.full(steps, 1.0), "list_rate": np.full(steps, 0.25), "reward": np.full(steps, 0.5),
    }
    level.update(overrides)
    noise = {
        "kl": lambda x: np.maximum(x + rng.normal(0, 0.25, steps), 0.01),
        "length": lambda x: x * (1 + rng.normal(0, 0.05, steps)),
        "verifier": lambda x: np.clip(x + rng.normal(0, 0.04, steps), 0, 1),
        "hedging": lambda x: np.maximum(x + rng.normal(0, 0.3, steps), 0),
        "list_rate": lambda x: rng.binomial(64, np.clip(x, 0, 1)) / 64,
        "reward": lambda x: x + rng.normal(0, 0.05, steps),
    }
    series = {key: None if level[key] is None else noise[key](np.asarray(level[key], dtype=float)) for key in noise}
    return [{"step": i, **{key: None if values is None else float(values[i]) for key, values in series.items()}}
            for i in range(steps)]


def ramp(start: float, end: float, begin: int = 50, finish: int = 150, steps: int = STEPS) -> np.ndarray:
    """Flat at `start`, a straight climb between steps `begin` and `finish`, then flat at `end`."""
    return np.interp(np.arange(steps), [begin, finish], [start, end])


def kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


# --- the streams from the issue ------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_a_calm_run_raises_no_alert(seed):
    assert scan(stream(seed)) == []


@pytest.mark.parametrize("seed", range(4))
def test_a_kl_spike_alerts_at_its_step_and_not_before(seed):
    rows = stream(seed)
    rows[60]["kl"] = 5.5  # under the ceiling: only the spike can see it
    alerts = scan(rows)
    assert kinds(alerts) == ["kl_spike"]
    assert alerts[0].step == 60
    assert alerts[0].value == 5.5
    assert "5.50 nats at step 60" in alerts[0].message


def test_a_kl_jump_above_the_ceiling_raises_both_alerts_at_that_step():
    rows = stream(0)
    rows[60]["kl"] = 9.0
    assert sorted((a.kind, a.step) for a in scan(rows)) == [("kl_ceiling", 60), ("kl_spike", 60)]


@pytest.mark.parametrize("seed", range(4))
def test_kl_climbing_past_the_ceiling_alerts_once_at_the_first_step_above(seed):
    rows = stream(seed, kl=ramp(1.0, 8.0, 0, STEPS - 1))
    first_above = next(r["step"] for r in rows if r["kl"] > 6.0)
    alerts = scan(rows)
    assert kinds(alerts) == ["kl_ceiling"]  # a slow climb is no spike
    assert alerts[0].step == first_above
    assert alerts[0].threshold == 6.0


@pytest.mark.parametrize("seed", range(4))
def test_length_climbing_while_the_verifier_stays_flat_alerts(seed):
    alerts = scan(stream(seed, length=ramp(200, 300)))
    assert kinds(alerts) == ["length_without_verifier"]
    alert = alerts[0]
    assert 50 < alert.step < 150  # during the climb, not after it
    assert alert.value > 0.25 and alert.threshold == 0.25
    assert "verifier reward went only from" in alert.message


@pytest.mark.parametrize("seed", range(4))
def test_length_climbing_with_the_verifier_climbing_too_does_not_alert(seed):
    assert scan(stream(seed, length=ramp(200, 300), verifier=ramp(0.3, 0.7))) == []


def test_length_after_an_early_dip_is_measured_from_the_low_point():
    # RL runs often shorten answers first: back to 200 from 150 is a third longer.
    length = np.where(np.arange(STEPS) < 40, 200.0, ramp(150, 200, 40, 140))
    alerts = scan(stream(0, length=length))
    assert kinds(alerts) == ["length_without_verifier"]
    assert "from 15" in alerts[0].message


def test_without_a_verifier_length_alone_alerts_and_the_total_reward_does_not_clear_it():
    # The total reward climbs with the length: that is the reward model being paid, not a cure.
    rows = stream(0, length=ramp(200, 300), verifier=None, reward=ramp(0.5, 2.0))
    alerts = scan(rows)
    assert kinds(alerts) == ["length_without_verifier"]
    assert "no verifier applies" in alerts[0].message


def test_without_a_verifier_the_length_alert_can_be_turned_off():
    rows = stream(0, length=ramp(200, 300), verifier=None)
    assert scan(rows, MonitorThresholds(length_alone_without_verifier=False)) == []


@pytest.mark.parametrize("metric, climb, kind", [
    ("hedging", ramp(1.0, 3.0), "hedging_rising"),
    ("list_rate", ramp(0.25, 0.6), "list_rising"),
])
@pytest.mark.parametrize("seed", range(3))
def test_rising_hedging_or_lists_alert_once(metric, climb, kind, seed):
    alerts = scan(stream(seed, **{metric: climb}))
    assert kinds(alerts) == [kind]
    assert 50 < alerts[0].step < 150


# --- repeats -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kl, alert_steps", [
    ([1.0] * 5 + [7.0] * 50, [5]),  # held for 50 steps: one alert
    ([1.0] * 5 + [7.0] * 5 + [1.0] * 5 + [7.0] * 5, [5]),  # cleared for less than a window: the same episode
    ([1.0] * 5 + [7.0] * 5 + [1.0] * 10 + [7.0] * 5, [5, 20]),  # cleared for a whole window: a new alert
    ([6.1, 5.9] * 20, [0]),  # hovering at the ceiling: alerts once, not on every crossing
])
def test_a_condition_that_keeps_holding_alerts_once(kl, alert_steps):
    alerts = scan([{"step": i, "kl": x} for i, x in enumerate(kl)], MonitorThresholds(kl_spike_factor=100))
    assert kinds(alerts) == ["kl_ceiling"] * len(alert_steps)
    assert [a.step for a in alerts] == alert_steps


@pytest.mark.parametrize("levels, alerts", [
    ([1.0, 2.2, 1.8, 2.2], 1),  # back under the threshold (+0.8) but not under half of it: the same episode
    ([1.0, 2.2, 1.0, 2.2], 2),  # back to where it started for a while: a new episode
])
def test_a_trend_re_alerts_only_after_falling_well_back(levels, alerts):
    hedging = np.repeat(levels, 30)  # 30 steps at each level, no noise
    rows = [{"step": i, "hedging": float(x)} for i, x in enumerate(hedging)]
    assert kinds(scan(rows)) == ["hedging_rising"] * alerts


def test_a_length_climb_that_stays_long_alerts_once():
    assert len(scan(stream(0, steps=600, length=ramp(200, 300, steps=600)))) == 1


def test_observe_returns_only_the_new_alerts_of_each_step():
    rows = stream(0)
    rows[60]["kl"] = 5.5
    monitor = Monitor()
    per_step = [monitor.observe(row) for row in rows]
    assert [i for i, new in enumerate(per_step) if new] == [60]
    assert monitor.alerts == scan(rows)


def test_missing_and_odd_values_are_skipped():
    rows = stream(0)
    rows[60]["kl"] = 5.5
    for i in range(0, STEPS, 7):
        rows[i] = {"kl": None, "length": float("nan"), "hedging": "n/a"}  # no step either
    rows[59].pop("step")  # a row without a step is the one after the previous
    alerts = scan(rows)
    assert [(a.kind, a.step) for a in alerts] == [("kl_spike", 60)]
    assert scan([{}, {"step": None}, {"kl": None, "verifier": None}]) == []


# --- thresholds -----------------------------------------------------------------------------------

def test_project_thresholds_override_the_defaults():
    t = MonitorThresholds.from_dict({"kl_ceiling": "4", "window": 5, "list_rise": "", "length_alone_without_verifier": "no"})
    assert (t.kl_ceiling, t.window, t.list_rise, t.length_alone_without_verifier) == (4.0, 5, 0.2, False)
    assert t.hedging_rise == MonitorThresholds().hedging_rise
    rows = stream(0, kl=np.full(STEPS, 4.5))
    assert scan(rows) == []
    assert kinds(scan(rows, t)) == ["kl_ceiling"]
    assert MonitorThresholds.from_dict(t.to_dict()) == t


@pytest.mark.parametrize("data, message", [
    ({"kl_celing": 5}, "unknown threshold"),
    ({"window": "ten"}, "window"),
])
def test_from_dict_refuses_unknown_or_unreadable_thresholds(data, message):
    with pytest.raises(ValueError, match=message):
        MonitorThresholds.from_dict(data)


@pytest.mark.parametrize("name, value", [
    ("kl_ceiling", 0), ("kl_ceiling", -1), ("kl_ceiling", math.nan),
    ("kl_spike_factor", 1.0), ("kl_spike_floor", -0.5),
    ("window", 2), ("min_steps", -1),
    ("length_rise", 0), ("verifier_flat", -0.1), ("hedging_rise", -1),
    ("list_rise", 0), ("list_rise", 1.5),
])
def test_errors_reject_invalid_thresholds(name, value):
    t = MonitorThresholds(**{name: value})
    assert list(t.errors()) == [name]
    with pytest.raises(ValueError, match=name):
        Monitor(t)


def test_defaults_are_valid_and_every_threshold_is_explained():
    assert MonitorThresholds().errors() == {}
    assert MonitorThresholds().kl_ceiling == 6.0
    assert all(MonitorThresholds.help().values())


def test_alerts_round_trip_through_json_shaped_dicts():
    rows = stream(0)
    rows[60]["kl"] = 9.0
    for alert in scan(rows):
        assert alert.kind in ALERT_KINDS
        assert Alert.from_dict(alert.to_dict()) == alert


# --- text stats ---------------------------------------------------------------------------------

@pytest.mark.parametrize("completions, expected", [
    ([], {"hedging": None, "list_rate": None, "chars": None}),
    ([""], {"hedging": None, "list_rate": 0.0, "chars": 0.0}),
    (["The answer is 4."], {"hedging": 0.0, "list_rate": 0.0, "chars": 16.0}),
    # 2 hedges ("perhaps", "might") over 5 + 4 words pooled (a bullet counts as a word, as the raters'
    # features count it); one of the two answers is a list
    (["Perhaps it might be 4.", "- one\n- two"], {"hedging": 200 / 9, "list_rate": 0.5, "chars": 16.5}),
])
def test_text_stats(completions, expected):
    assert text_stats(completions) == pytest.approx(expected)
