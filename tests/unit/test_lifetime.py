"""The machinery of the lifetime benchmark (scripts/bench --only fallback, issue 13):
bayes_dev.lifetime's corpus, stand-in, population, v1 rules and figures, each
checked against an independent computation."""

from __future__ import annotations

import math
import random
import statistics

import pytest
import yaml
from bayes_dev import lifetime
from bayes_engine import model, params, vocab


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return lifetime.corpus_messages()


def test_corpus_is_the_first_line_of_each_english_conversation_in_file_order(corpus):
    files = lifetime.corpus_files()
    assert [f.name for f in files] == sorted(f.name for f in files) and len(files) > 10
    expected = []
    for path in files:
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8"))["conversations"]:
            expected.append(str(conversation[0]))
    assert corpus == expected
    assert len(corpus) > 1000 and all(isinstance(line, str) and line for line in corpus)


@pytest.mark.parametrize("compound", [-1.0, -0.9999, -0.75, -0.5, -0.05, -0.0001, 0.0, 0.0001, 0.05, 0.3, 0.5, 1.0])
def test_standin_deltas_are_integers_in_range_with_the_sign_of_the_score(compound):
    deltas = lifetime.standin_deltas(compound)
    assert list(deltas) == list(vocab.METRIC_NAMES)
    for name, delta in deltas.items():
        assert isinstance(delta, int) and -10 <= delta <= 10
        assert delta == round(10 * lifetime.STANDIN_WEIGHTS[name] * compound)
        assert delta * compound >= 0  # never the opposite sign
    model.check_llm_deltas(deltas)  # what bayes_apply_llm_scores accepts


def test_standin_deltas_clip_and_reach_the_ends():
    assert lifetime.standin_deltas(1.0)["passion"] == 10 and lifetime.standin_deltas(-1.0)["passion"] == -10
    assert lifetime.standin_deltas(7.0) == lifetime.standin_deltas(1.0)
    assert lifetime.standin_deltas(-7.0) == lifetime.standin_deltas(-1.0)
    assert lifetime.standin_deltas(0.0) == dict.fromkeys(vocab.METRIC_NAMES, 0)


def test_standin_scores_text_with_vader():
    standin = lifetime.StandIn()
    assert standin.deltas("I love you, you are wonderful!")["passion"] > 0
    assert standin.deltas("I hate this, it is terrible.")["passion"] < 0
    assert standin.deltas("My printer is not printing.") == lifetime.standin_deltas(
        standin.compound("My printer is not printing.")
    )


@pytest.mark.parametrize(
    ("compound", "mood"),
    [
        (-1.0, "defensive"),
        (-0.0501, "defensive"),
        (-0.05, "content"),
        (0.0, "content"),
        (0.05, "content"),
        (0.0501, "playful"),
        (1.0, "playful"),
    ],
)
def test_standin_mood_is_the_sign_of_the_score_beyond_vaders_neutral_band(compound, mood):
    assert lifetime.standin_mood(compound) == mood
    assert mood in vocab.MOODS  # what bayes_apply_llm_scores accepts as p_mood


def test_standin_mood_scores_text_with_vader():
    standin = lifetime.StandIn()
    assert standin.mood("I love you, you are wonderful!") == "playful"
    assert standin.mood("I hate this, it is terrible.") == "defensive"
    assert standin.mood("My printer is not printing.") == lifetime.standin_mood(
        standin.compound("My printer is not printing.")
    )


def test_population_is_seeded_and_a_player_does_not_depend_on_the_population_size():
    big = lifetime.population(7, 5, 40, 100)
    assert big == lifetime.population(7, 5, 40, 100)
    assert lifetime.population(7, 2, 40, 100) == big[:2]
    assert big != lifetime.population(8, 5, 40, 100)
    assert len({p.ids["reference"] for p in big} | {p.ids["policy"] for p in big}) == 10


def test_population_times_gaps_and_new_days():
    players = lifetime.population(13, 200, 200, 2000)
    gaps, new_days, messages = [], 0, 0
    for p in players:
        assert len(p.lines) == len(p.offsets) == len(p.gaps) == 200
        assert p.gaps[0] is None and all(0 <= line < 2000 for line in p.lines)
        for k in range(1, 200):
            assert isinstance(p.offsets[k], int) and p.offsets[k] - p.offsets[k - 1] == p.gaps[k] >= 1
            messages += 1
            if p.gaps[k] > 6 * 3600:  # a jump to the next day's 07:00-12:00 UTC
                new_days += 1
                assert p.offsets[k] // 86400 == p.offsets[k - 1] // 86400 + 1
                assert 7 * 3600 <= p.offsets[k] % 86400 < 12 * 3600
            else:
                gaps.append(p.gaps[k])
    assert 0.03 < new_days / messages < 0.05
    assert 80 < statistics.median(gaps) < 100


def test_day0_keeps_every_send_time_inside_the_time_window():
    players = lifetime.population(13, 50, 200, 2000)
    now = 1_800_000_123.4
    day0 = lifetime.day0_for(players, now, 720)
    assert day0 % 86400 == 0
    first = min(p.sent_at(day0, 0) for p in players)
    last = max(p.sent_at(day0, 199) for p in players)
    assert last <= now - 86400 and first >= now - 720 * 3600
    day0 = lifetime.day0_for(players, now, 720, end_before_s=600)
    assert max(p.sent_at(day0, 199) for p in players) == int(now) - 600
    with pytest.raises(ValueError, match="max_message_age_h"):
        lifetime.day0_for(players, now, 48)


def _result(n=20, var=0.01, observations=2, composite=40.0, threshold=55.0):
    metrics = {name: {"mean": 0.5, "var": var} for name in vocab.METRIC_NAMES}
    return {
        "n": n,
        "metrics": metrics,
        "observations": observations,
        "composite": composite,
        "boss": {"threshold": threshold},
    }


def test_v1_rules_in_their_order():
    assert lifetime.v1_reason(_result(n=9, var=0.5, observations=0, composite=55)) == "cold_start"
    assert lifetime.v1_reason(_result(n=10, var=0.026, observations=0, composite=55)) == "high_variance"
    high_trust = _result()
    high_trust["metrics"]["trust"]["var"] = 0.0201  # trust's limit is .020, the others' .025
    assert lifetime.v1_reason(high_trust) == "high_variance"
    assert lifetime.v1_reason(_result(var=0.02, observations=0, composite=55)) == "no_signals"
    assert lifetime.v1_reason(_result(composite=50.01)) == "critical_zone"
    assert lifetime.v1_reason(_result(composite=50.0)) == "bayesian_sufficient"
    assert lifetime.v1_reason(_result(composite=60.0)) == "bayesian_sufficient"


def test_bucket_rates_against_a_count_by_message_number():
    rnd = random.Random(3)
    for messages in (7, 30, 150, 200, 230):
        consulted = [[rnd.random() < 0.3 for _ in range(messages)] for _ in range(9)]
        expected = {bucket: [0, 0] for bucket in lifetime.BUCKETS}
        for row in consulted:
            for n, asked in enumerate(row, start=1):
                for lo, hi in lifetime.BUCKETS:
                    if lo < n <= hi:
                        expected[(lo, hi)][0] += asked
                        expected[(lo, hi)][1] += 1
        assert lifetime.bucket_rates(consulted) == [tuple(expected[b]) for b in lifetime.BUCKETS]
        assert lifetime.lifetime(consulted) == (sum(map(sum, consulted)), 9 * messages)


def test_fidelity_compares_after_message_ten_only():
    ref = lifetime.Trace(composite=[50.0] * 12, ready=[False] * 12, p_ready=[0.5] * 12)
    same = lifetime.Trace(composite=[50.0] * 12, ready=[False] * 12, p_ready=[0.5] * 12)
    assert lifetime.fidelity([same], [ref]) == lifetime.Fidelity(1.0, 0.0, 0.0, 0.0, 2)
    off = lifetime.Trace(
        composite=[0.0] * 10 + [52.0, 47.0], ready=[True] * 10 + [True, False], p_ready=[1.0] * 10 + [0.75, 0.25]
    )
    assert lifetime.fidelity([off], [ref]) == lifetime.Fidelity(0.5, 2.5, 0.25, 0.0, 2)
    assert lifetime.fidelity([ref], [off]) == lifetime.Fidelity(0.5, 2.5, 0.25, 0.5, 2)


def test_budget_snapshots_change_the_window_only():
    for window in lifetime.BUDGET_WINDOWS:
        prm = params.Params.from_snapshot(lifetime.budget_snapshot(window))
        assert prm.g["llm_budget_window"] == window and prm.g["llm_budget_tokens"] == 3
        rest = {k: v for k, v in prm.g.items() if k != "llm_budget_window"}
        assert rest == {k: v for k, v in params.DEFAULT_PARAMS.g.items() if k != "llm_budget_window"}
    assert params.DEFAULT_SNAPSHOT["global"]["llm_budget_window"] == 100  # the copy left the defaults alone


def test_simulated_policies_on_one_player(corpus):
    standin = lifetime.StandIn()
    deltas = [standin.deltas(text) for text in corpus]
    (player,) = lifetime.population(13, 1, 120, len(corpus))
    day0 = lifetime.day0_for([player], 1_800_000_000, 720)
    prm = params.DEFAULT_PARAMS
    ref = lifetime.simulate(player, "reference", prm, day0, corpus, deltas)
    v2 = lifetime.simulate(player, "v2", prm, day0, corpus, deltas, keep_decisions=True)
    assert all(ref.consulted) and len(ref.consulted) == 120
    assert v2.consulted[:9] == [True] * 9  # cold start: always granted
    # what v2 asked for is what the engine granted: fallback.needed of each message
    assert v2.consulted == [message[1] for message, _ in v2.decisions]
    B, W = prm.g["llm_budget_tokens"], prm.g["llm_budget_window"]
    for n in range(10, 121):
        assert sum(v2.consulted[9:n]) <= B + (n - 9) * B / W + 1e-9
    assert v2 == lifetime.simulate(player, "v2", prm, day0, corpus, deltas, keep_decisions=True)
    assert not math.isnan(lifetime.fidelity([v2], [ref]).composite_mad)


def test_the_figures_do_not_depend_on_the_day_of_the_run(corpus):
    """day0_for puts day 0 on a UTC midnight: the same messages on other days give the same decisions."""
    standin = lifetime.StandIn()
    deltas = [standin.deltas(text) for text in corpus]
    players = lifetime.population(13, 2, 60, len(corpus))
    day0 = lifetime.day0_for(players, 1_800_000_000, 720)
    for player in players:
        for policy in lifetime.POLICIES:
            a = lifetime.simulate(player, policy, params.DEFAULT_PARAMS, day0, corpus, deltas)
            b = lifetime.simulate(player, policy, params.DEFAULT_PARAMS, day0 - 37 * 86400, corpus, deltas)
            assert (a.consulted, a.reason, a.composite, a.p_ready) == (b.consulted, b.reason, b.composite, b.p_ready)
