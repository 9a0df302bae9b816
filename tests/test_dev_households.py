"""The dev households whose meters keep reporting in `gridchain demo` (meters/dev_households.py) fit
their genesis certificates. That they report during the day and after it with --keep, and that
SIGTERM then stops every node, is checked on the short sunny demo in tests/test_demo.py (one run of
four validators serves both)."""
from __future__ import annotations

from genesis.chain_spec import DEV_METERS, DEV_ROLES
from meters.dev_households import DEV_HOUSEHOLDS
from meters.household import load_profile


def test_the_dev_households_fit_their_genesis_meters():
    """Same names and roles as genesis; a household with PV on a bidirectional meter, one without on
    an import-only meter; the data's busiest half hour, at each household's scale, within the meter's
    rated power (else the chain flags the reading implausible and never settles it)."""
    meters = {owner: (kind, rated) for owner, _zone, kind, rated in DEV_METERS}
    assert sorted(h.name for h in DEV_HOUSEHOLDS) == sorted(meters)
    profile = load_profile()
    for h in DEV_HOUSEHOLDS:
        kind, rated_w = meters[h.name]
        assert DEV_ROLES[h.name] == ["prosumer" if h.prosumer else "consumer"]
        assert kind == (2 if h.prosumer else 0)
        peak_load_w = max(profile.consumption_wh) * h.spec.load_pct // 100 * 3600 // 1800
        peak_pv_w = max(profile.generation_wh) * h.spec.pv_pct // 100 * 3600 // 1800
        assert peak_load_w <= rated_w and peak_pv_w <= rated_w, h
