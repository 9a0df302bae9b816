"""The accelerated chain clock a demo chain's spec prescribes (primitives/chain_clock.py)."""
from __future__ import annotations

import pytest

from primitives.chain_clock import ChainClock, ChainClockError

W, C = 1_700_000_000_000, 1_800_000_000_000


def test_runs_factor_times_faster_then_at_normal_speed_after_until():
    clock = ChainClock(factor=360, wall_start_ms=W, chain_start_ms=C, until_chain_ms=C + 3_600_000)
    assert clock.chain_ms(W) == C
    assert clock.chain_ms(W + 1_000) == C + 360_000
    # the warp ends when the chain reaches `until` (10 wall seconds later), then one-to-one
    assert clock.chain_ms(W + 10_000) == C + 3_600_000
    assert clock.chain_ms(W + 12_000) == C + 3_602_000
    # before the start the formula runs backwards, so nodes started early agree too
    assert clock.chain_ms(W - 1_000) == C - 360_000


def test_wall_time_at_inverts_the_clock_on_both_sides_of_the_switch():
    clock = ChainClock(factor=100, wall_start_ms=W, chain_start_ms=C, until_chain_ms=C + 1_000_000)
    for chain in (C, C + 500_000, C + 1_000_000, C + 1_250_000):
        assert clock.chain_ms(clock.wall_ms_at(chain)) == chain


def test_spec_round_trip_and_real_time_without_a_warp():
    clock = ChainClock(factor=360, wall_start_ms=W, chain_start_ms=C, until_chain_ms=C + 1)
    spec = {"consensus": {"engine": "bft", "timeWarp": clock.to_json()}}
    assert ChainClock.from_spec(spec) == clock
    assert ChainClock.from_spec({"consensus": {"engine": "bft"}}) is None


@pytest.mark.parametrize("warp", [{"factor": 0, "wallStartMs": W, "chainStartMs": C},
                                  {"factor": 360, "chainStartMs": C},
                                  {"factor": "fast", "wallStartMs": W, "chainStartMs": C},
                                  {"factor": 2, "wallStartMs": W, "chainStartMs": C, "untilChainMs": C - 1}])
def test_a_bad_time_warp_is_one_clear_error(warp):
    with pytest.raises(ChainClockError, match="timeWarp"):
        ChainClock.from_spec({"consensus": {"timeWarp": warp}})
