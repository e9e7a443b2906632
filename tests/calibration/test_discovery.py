"""Bias discovery: the text cues, the premise-agreement (sycophancy) cue, and the tests over a
simulated pool: a planted preference that no named detector covers (emoji, one model's answers,
agreeing with the user) is found, honest raters are not, and on pools with nothing planted the
false discoveries stay within Benjamini-Hochberg's bound."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from calibration import bias, discovery

SENTENCES = ["The function returns the sum of its arguments.", "Water boils at 100 degrees at sea level.",
             "Sort the list, then drop the duplicates.", "Interest is charged monthly on the balance.",
             "A binary search halves the interval each step."]
MODELS = ["alpha-7b", "beta-13b", "gamma-70b"]


def test_response_cues_read_each_cue():
    cues = discovery.response_cues("# Answer\n\nGreat question! 🙂 Here it is:\n```\nprint(1)\n```\n")
    assert (cues["headers"], cues["emoji"], cues["flattery"], cues["code"]) == (1.0, 1.0, 1.0, 1.0)
    assert discovery.response_cues("I'm sorry, but I can't help with that.")["refusal"] == 1.0
    assert discovery.response_cues("Plain words.")["emoji"] == 0.0
    # Flesch-Kincaid by hand: 9 words, 1 sentence, 11 syllables -> 0.39*9 + 11.8*11/9 - 15.59.
    text = "The cat sat on the mat and ate the fish."
    words, syllables = 10, 10
    assert discovery.reading_grade(text) == pytest.approx(0.39 * words + 11.8 * syllables / words - 15.59)


@pytest.mark.parametrize("prompt, response, expected", [
    ("I think the Great Wall is visible from space, right?", "Yes, you're right, it is visible.", 1),
    ("I think the Great Wall is visible from space, right?", "Actually, it is not visible to the naked eye.", -1),
    ("I'm pretty sure vaccines cause autism.", "That's a common misconception: they do not.", -1),
    ("My doctor said I should drink 8 glasses a day, correct?", "Absolutely, that is the rule.", 1),
    ("How far is the Moon?", "Yes, about 384,000 km.", 0),  # no belief stated
    ("I believe Paris is in Spain.", "Paris is the capital of France.", 0),  # neither agrees nor pushes back
])
def test_premise_agreement(prompt, response, expected):
    assert discovery.premise_agreement(prompt, response) == expected


def _pool(seed: int, planted: dict[int, str], n_annotators: int = 10, n_items: int = 800, per_item: int = 5):
    """Items with random cues on each side; honest raters follow the truth 85% of the time; a
    planted rater takes the side with their cue 85% of the time where only one side has it."""
    rng = np.random.default_rng(seed)
    texts, models, emoji = [[], []], [[], []], np.zeros((n_items, 2), dtype=bool)
    prompts = []
    for i in range(n_items):
        stated = rng.random() < 0.3
        prompts.append(("I think the answer is obvious, right? " if stated else "") + f"Question {i}?")
        for side in (0, 1):
            parts = [SENTENCES[j] for j in rng.integers(0, len(SENTENCES), rng.integers(1, 4))]
            text = " ".join(parts)
            if stated and rng.random() < 0.5:
                text = ("You're right. " if rng.random() < 0.5 else "Actually, no. ") + text
            if rng.random() < 0.3:
                text += " 🙂"
                emoji[i, side] = True
            texts[side].append(text)
            models[side].append(MODELS[rng.integers(0, 3)])
    truth = rng.integers(0, 2, n_items)
    chosen = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item]
    item = np.repeat(np.arange(n_items), per_item)
    annotator = chosen.reshape(-1)
    choice = np.where(rng.random(item.size) < 0.85, truth[item], 1 - truth[item])
    cues = {c.key: c.side for c in discovery.item_cues(texts[0], texts[1], prompts, models[0], models[1])}
    for who, key in planted.items():
        side = cues[key][item]
        go = (annotator == who) & (side >= 0) & (rng.random(item.size) < 0.85)
        choice[go] = side[go]
    a_left = rng.random(item.size) < 0.5
    judgments = bias.Judgments(item=item, annotator=annotator, choice=choice, a_left=a_left,
                               time_ms=np.full(item.size, 30_000))
    all_cues = discovery.item_cues(texts[0], texts[1], prompts, models[0], models[1]) + [discovery.position_cue(judgments)]
    return judgments, all_cues, n_annotators, n_items


@pytest.mark.parametrize("seed", [11, 12])
def test_discovery_finds_planted_cues_no_named_detector_covers_and_no_honest_rater(seed):
    planted = {3: "emoji", 7: "model:beta-13b", 8: "sycophancy"}
    judgments, cues, n_annotators, n_items = _pool(seed, planted)
    findings = discovery.discover(judgments, cues, n_annotators, n_items)
    found = {(f.annotator, f.cue) for f in findings if f.discovered}
    for who, key in planted.items():
        assert (who, key) in found, (who, key, sorted(found))
        finding = next(f for f in findings if (f.annotator, f.cue) == (who, key))
        assert finding.effect > 0.2 and finding.low > 0 and finding.examples
        assert "prefers" in finding.words
    honest = {a for a, _ in found} - set(planted)
    assert not honest, [(f.annotator, f.cue, f.q) for f in findings if f.discovered and f.annotator in honest]
    # The named detectors see none of these raters.
    items = bias.Items(len_a=np.zeros(n_items), len_b=np.zeros(n_items), assert_a=np.zeros(n_items),
                       assert_b=np.zeros(n_items), list_a=np.zeros(n_items, bool), list_b=np.zeros(n_items, bool),
                       read_chars=np.full(n_items, 100.0), expert=np.full(n_items, bias.NO_EXPERT))
    named = bias.detect(judgments, items, n_annotators)
    assert not any(named[who]["flags"] for who in planted), [(w, [f.kind for f in named[w]["flags"]]) for w in planted]


def test_false_discoveries_stay_within_the_bh_bound_on_pools_with_nothing_planted():
    """Under the global null Benjamini-Hochberg at 5% makes any discovery in at most 5% of pools:
    of 20 pools, more than 3 with one would happen by chance with probability under 2%."""
    pools_with_any = 0
    tests = 0
    for seed in range(100, 120):
        judgments, cues, n_annotators, n_items = _pool(seed, {}, n_items=400)
        findings = discovery.discover(judgments, cues, n_annotators, n_items)
        tests += len(findings)
        pools_with_any += any(f.discovered for f in findings)
    assert tests > 20 * 60  # many tests per pool: uncorrected, false alarms would be near certain
    assert pools_with_any <= 3, pools_with_any
    assert stats.binom.sf(3, 20, 0.05) < 0.02


def test_a_custom_cue_finds_who_prefers_it_and_a_runaway_pattern_cannot_stall():
    import time

    judgments, cues, n_annotators, n_items = _pool(21, {2: "emoji"})
    emoji_side = next(c for c in cues if c.key == "emoji").side
    a_texts = ["smile 🙂" if s == bias.A else "plain" for s in emoji_side]
    b_texts = ["smile 🙂" if s == bias.B else "plain" for s in emoji_side]
    custom, timeouts = discovery.custom_cue({"name": "smile", "keywords": ["smile"]}, a_texts, b_texts)
    findings = discovery.discover(judgments, [custom], n_annotators, n_items)
    assert [f.annotator for f in findings if f.discovered] == [2] and timeouts == 0
    regex_cue, _ = discovery.custom_cue({"name": "smile-re", "pattern": r"sm[i]le"}, a_texts, b_texts)
    assert (regex_cue.side == custom.side).all()
    # Catastrophic backtracking on every text: each search gives up after its time limit.
    started = time.perf_counter()
    _cue, timeouts = discovery.custom_cue({"name": "bad", "pattern": r"(a|aa)+$"}, ["a" * 60 + "b"] * 3, ["x"] * 3)
    assert timeouts == 3 and time.perf_counter() - started < 3


def test_each_test_equals_scipys_one_sample_t_test_on_differences_computed_by_hand():
    judgments, cues, n_annotators, n_items = _pool(31, {}, n_items=300)
    cue = next(c for c in cues if c.key == "length")
    findings = {f.annotator: f for f in discovery.discover(judgments, [cue], n_annotators, n_items)}
    side = cue.side[judgments.item]
    decisive = (judgments.choice == bias.A) | (judgments.choice == bias.B)
    for a, finding in list(findings.items())[:3]:
        diffs = []
        for j in np.flatnonzero((judgments.annotator == a) & decisive & (side >= 0)):
            others = [x for x in np.flatnonzero((judgments.item == judgments.item[j]) & decisive & (side >= 0)) if x != j]
            if len(others) < 2:
                continue
            ref = np.mean([judgments.choice[o] == side[o] for o in others])
            diffs.append(float(judgments.choice[j] == side[j]) - ref)
        oracle = stats.ttest_1samp(diffs, 0.0)
        low, high = oracle.confidence_interval(0.95)
        assert finding.n == len(diffs)
        assert (finding.effect, finding.p, finding.low, finding.high) == pytest.approx(
            (np.mean(diffs), oracle.pvalue, low, high), rel=1e-9, abs=1e-12)


def _timed_pool(seed: int, planted: dict[int, str], n_annotators: int = 8, n_items: int = 700, per_item: int = 5):
    """Honest raters right 85% of the time around the clock; a planted rater drops to 55% under
    their condition (at night, when rushed, late in a long session). Judgments spread over two
    weeks in working sessions of an hour or three."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n_items)
    chosen = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item]
    item = np.repeat(np.arange(n_items), per_item)
    annotator = chosen.reshape(-1)
    created = np.zeros(item.size, dtype=np.int64)
    time_ms = rng.integers(8_000, 90_000, item.size)
    for a in range(n_annotators):
        mine = np.flatnonzero(annotator == a)
        t, k = 1_700_000_000 + int(rng.integers(0, 86_400)), 0
        while k < mine.size:  # sessions of 20-70 judgments, 2-4 minutes apart, 1-20 hours between
            for _ in range(int(rng.integers(20, 70))):
                if k == mine.size:
                    break
                created[mine[k]] = t
                t += int(rng.integers(120, 240))
                k += 1
            t += int(rng.integers(3_600, 72_000))
    judgments = bias.Judgments(item=item, annotator=annotator, choice=np.zeros(item.size, dtype=np.int64),
                               a_left=rng.random(item.size) < 0.5, time_ms=time_ms)
    inside = {c.key: c.inside for c in discovery.time_conditions(judgments, created)}
    accuracy = np.full(item.size, 0.85)
    for who, key in planted.items():
        accuracy[(annotator == who) & inside[key]] = 0.55
    judgments.choice = np.where(rng.random(item.size) < accuracy, truth[item], 1 - truth[item])
    return judgments, created, n_annotators, n_items


def test_time_conditions_read_the_clock_the_stopwatch_and_the_session():
    judgments = bias.Judgments(item=np.zeros(6, dtype=np.int64), annotator=np.zeros(6, dtype=np.int64),
                               choice=np.zeros(6, dtype=np.int64), a_left=np.ones(6, dtype=bool),
                               time_ms=np.array([1000, 2000, 3000, 4000, 0, 5000]))
    day = 1_700_006_400  # 2023-11-15 00:00 UTC
    created = np.array([day + 23 * 3600, day + 23 * 3600 + 600, day + 3 * 3600, day + 10 * 3600,
                        day + 12 * 3600, day + 12 * 3600 + 7300])
    night, rushed, late = discovery.time_conditions(judgments, created)
    assert night.inside.tolist() == [True, True, True, False, False, False]
    # Fastest quarter of the timed ones (1..5 s: at most 2 s); an untimed judgment cannot be told.
    assert rushed.inside.tolist()[:4] == [True, True, False, False] and not rushed.known[4]
    # Every gap but 23:00 -> 23:10 is over 30 minutes: no session reaches two hours.
    assert late.inside.tolist() == [False] * 6
    created[5] = day + 12 * 3600 + 1500  # 25 minutes later: the same session, but not two hours in
    assert discovery.time_conditions(judgments, created)[2].inside.tolist() == [False] * 6
    steady = np.array([day + k * 1200 for k in range(6)])  # every 20 minutes: 1 h 40 in at the end
    assert discovery.time_conditions(judgments, steady)[2].inside.tolist() == [False] * 6
    steady = np.array([day + k * 1500 for k in range(6)])  # every 25 minutes: 2 h 5 in at the end
    assert discovery.time_conditions(judgments, steady)[2].inside.tolist() == [False] * 5 + [True]


@pytest.mark.parametrize("planted", [{2: "time:night"}, {5: "time:rushed"}, {6: "time:long_session"}])
def test_discovery_finds_a_rater_who_slips_under_a_condition(planted):
    judgments, created, n_annotators, n_items = _timed_pool(21, planted)
    conditions = discovery.time_conditions(judgments, created)
    findings = discovery.discover(judgments, [], n_annotators, n_items, conditions=conditions)
    found = {(f.annotator, f.cue) for f in findings if f.discovered}
    assert found == set(planted.items()), found
    finding = next(f for f in findings if f.discovered)
    assert finding.effect > 0.1 and "disagrees with the other annotators more" in finding.words
    # The interval is Welch's: scipy's, read back.
    against, defined = discovery.against_majority(judgments, n_items)
    condition = next(c for c in conditions if c.key == finding.cue)
    mine = defined & condition.known & (judgments.annotator == finding.annotator)
    welch = stats.ttest_ind(against[mine & condition.inside].astype(float),
                            against[mine & ~condition.inside].astype(float), equal_var=False)
    assert (finding.low, finding.high) == pytest.approx(tuple(welch.confidence_interval(0.95)))


def test_time_conditions_make_few_false_discoveries_on_pools_without_them():
    pools_with_any = 0
    for seed in range(30):
        judgments, created, n_annotators, n_items = _timed_pool(100 + seed, {})
        findings = discovery.discover(judgments, [], n_annotators, n_items,
                                      conditions=discovery.time_conditions(judgments, created))
        pools_with_any += any(f.discovered for f in findings)
    # Every null is true here, so BH at 5% bounds the chance of any discovery by 5%; allow for the
    # binomial spread of 30 pools (P(>= 5 of 30) at 5% is 0.016).
    assert pools_with_any <= 4, pools_with_any
