import random

import pytest

from dinostream.ingest.backoff import Backoff


def _delays(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


def test_full_jitter_stays_under_the_growing_ceiling_and_the_cap():
    for seed in range(50):
        delays = _delays(Backoff(1.0, 30.0, 2.0, "full", random.Random(seed)), 10)
        for n, d in enumerate(delays):
            assert 0.0 <= d <= min(30.0, 2.0**n)


def test_full_jitter_reaches_the_cap_for_a_long_outage():
    ninth = [Backoff(1.0, 30.0, 2.0, "full", random.Random(seed)) for seed in range(200)]
    values = [_delays(b, 9)[-1] for b in ninth]  # ceiling 256, capped at 30
    assert max(values) > 25.0
    assert max(values) <= 30.0


def test_decorrelated_never_below_initial_nor_above_cap_and_grows():
    firsts, sixths = [], []
    for seed in range(200):
        delays = _delays(Backoff(1.0, 30.0, 3.0, "decorrelated", random.Random(seed)), 6)
        assert all(1.0 <= d <= 30.0 for d in delays)
        assert delays[0] <= 3.0  # uniform(initial, initial * multiplier)
        firsts.append(delays[0])
        sixths.append(delays[-1])
    assert sum(sixths) / len(sixths) > 3 * sum(firsts) / len(firsts)


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_reset_starts_again_from_initial(jitter):
    backoff = Backoff(1.0, 30.0, 2.0, jitter, random.Random(1))
    _delays(backoff, 20)
    assert backoff.attempts == 20
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() <= 2.0


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_same_seed_same_delays(jitter):
    a = _delays(Backoff(0.5, 10.0, 3.0, jitter, random.Random(7)), 8)
    b = _delays(Backoff(0.5, 10.0, 3.0, jitter, random.Random(7)), 8)
    c = _delays(Backoff(0.5, 10.0, 3.0, jitter, random.Random(8)), 8)
    assert a == b
    assert a != c


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_endless_outage_does_not_overflow(jitter):
    backoff = Backoff(1.0, 30.0, 2.0, jitter, random.Random(3))
    assert all(0.0 <= d <= 30.0 for d in _delays(backoff, 3000))


def test_multiplier_one_is_a_flat_jittered_delay():
    delays = _delays(Backoff(2.0, 30.0, 1.0, "decorrelated", random.Random(0)), 20)
    assert all(d == pytest.approx(2.0) for d in delays)


def test_cap_below_initial_caps_everything():
    for jitter in ("full", "decorrelated"):
        assert all(d <= 0.5 for d in _delays(Backoff(1.0, 0.5, 2.0, jitter, random.Random(0)), 10))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 30.0, 2.0, "full"), "initial backoff must be positive"),
        ((1.0, 0.0, 2.0, "full"), "maximum backoff must be positive"),
        ((1.0, 30.0, 0.5, "full"), "multiplier must be at least 1"),
        ((1.0, 30.0, 2.0, "equal"), "unknown backoff jitter 'equal'"),
    ],
    ids=["zero-initial", "zero-max", "shrinking", "unknown-jitter"],
)
def test_bad_arguments_name_the_problem(args, message):
    with pytest.raises(ValueError, match=message):
        Backoff(*args)
