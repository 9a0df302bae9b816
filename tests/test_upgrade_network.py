"""A runtime upgrade on a real 4-validator network, by council vote (issue 13, "Scheduled upgrades").

Every validator starts as "the old release" (GRIDCHAIN_RUNTIME_VERSIONS=1: this binary emulating
one that knows only runtime version 1). Bob sets a standing order; the council (local spec: Alice,
Dave and the four validator operators, 2/3 for upgrades); validators 1-3 are restarted one by one
as the new release (the knob unset) while the chain goes on, as operators install a release ahead
of time; validator 4 is left old; then the council schedules version 2 at a height ahead. Past the height: 1-3 finalize under version 2, the standing order
has its all-day window from the migration, the runtime version and metadata at the block before
the height and at it differ, and validator 4 has stopped with a non-zero status and the one line
naming the version to install. Its database is intact: restarted as the new release it rejoins
the same chain.
"""
from __future__ import annotations

import contextlib
import os
import time

import pytest

from pallets import VERSIONS_ENV, market
from primitives.keys import Keypair, dev_keypair
from rpc.client import Client
from tests.bft_network import BftNetwork, hx, unhex
from tests.council_helpers import pass_motion_rpc

pytestmark = pytest.mark.slow   # real node processes

#: blocks between proposing the upgrade and its height (a block a second): the motion (propose,
#: votes, the enactment delay, enact: about 6-9 blocks on the reference machine) fits inside with
#: room to spare
BLOCKS_AHEAD = 18
BOB = dev_keypair("Bob")
BOB_METER = Keypair.from_uri("//Bob//meter").public_key
COUNCIL = [dev_keypair("Alice"), dev_keypair("Dave"), *(Keypair.from_uri(f"//Validator{i}") for i in range(1, 5))]


@contextlib.contextmanager
def old_release():
    """Processes started inside know only runtime version 1."""
    before = os.environ.get(VERSIONS_ENV)
    os.environ[VERSIONS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[VERSIONS_ENV]
        else:
            os.environ[VERSIONS_ENV] = before


def restart_as_new_release(net: BftNetwork, i: int) -> None:
    """Stop validator i cleanly and start it again without the knob; wait until it follows again."""
    node = net.validators[i]
    assert node.stop() == 0, node.log_tail()
    node.start()
    others = [n for n in net.validators if n is not node and n.running()]
    target = max(n.finalized_number() for n in others) + 2
    net.wait_finalized(target, [node, *others], timeout=60)


def market_calls(md: dict) -> list[str]:
    return [c["name"] for p in md["pallets"] if p["name"] == "market" for c in p["calls"]]


@pytest.mark.timeout(240)
def test_validators_upgrade_one_by_one_and_the_old_one_stops_at_the_height(tmp_path):
    net = BftNetwork(tmp_path, validators=4)
    try:
        with old_release():
            net.start()
        net.wait_finalized(2, timeout=60)
        v1 = net.validators[0]
        with Client(v1.url) as client:
            # a standing order under version 1, before the upgrade
            xt = client.build_extrinsic(BOB, "market", "set_standing_order",
                                        {"side": 1, "zone": 1, "price_per_kwh": 50_000, "quantity_wh": 500,
                                         "meter": BOB_METER, "green": False})
            assert client.submit_and_watch(xt, timeout=60).success is True
            assert client.get_storage(market.standing_orders.key_of(0)) is not None   # Bob's is id 0

        for i in range(3):
            restart_as_new_release(net, i)
        restarted_by = net.validators[0].finalized_number()
        with Client(net.validators[0].url) as client:
            at = int(client.request("chain_getHeader", [])["number"], 16) + BLOCKS_AHEAD
            enacted = pass_motion_rpc(client, COUNCIL[0], COUNCIL[1:], "upgrades", "schedule",
                                      {"spec_version": 2, "at": at}, timeout=60)
            assert enacted.result is None, enacted.result
            assert enacted.number < at - 3, "the motion took too long: the height passed before it"
        print(f"validators 1-3 restarted by #{restarted_by}; upgrade at #{at}, scheduled in #{enacted.number}")

        old = net.validators[3]
        new = net.validators[:3]
        net.wait_finalized(at + 3, new, timeout=BLOCKS_AHEAD + 60)
        net.assert_same_chain(new)

        # validator 4 stopped by itself before the height, with the one line, non-zero
        net.poll("the old validator to exit", lambda: not old.running(), timeout=30)
        code = old.stop()
        line = (f"runtime spec_version 2 is scheduled at block #{at} and this node knows versions 1; "
                f"install a gridchain release that knows spec_version 2")
        log = old.log_text()
        assert code != 0 and line in log, log[-3000:]

        n = new[0]
        before, after = n.block_hash(at - 1), n.block_hash(at)
        rv_before = n.rpc("state_getRuntimeVersion", [before])
        rv_after = n.rpc("state_getRuntimeVersion", [after])
        assert (rv_before["specVersion"], rv_after["specVersion"]) == (1, 2)
        md_before, md_after = (n.rpc("state_getMetadata", [h]) for h in (before, after))
        assert "set_standing_order_window" not in market_calls(md_before)
        assert "set_standing_order_window" in market_calls(md_after)
        assert n.rpc("state_getRuntimeVersion")["specVersion"] == 2

        # the migration in block `at` gave Bob's standing order (id 0) its all-day window
        key = hx(market.standing_windows.key_of(0))
        assert n.rpc("state_getStorage", [key, before]) is None
        window = n.rpc("state_getStorage", [key, after])
        assert window is not None
        assert market.standing_windows.value_type.decode(unhex(window)) == (0, 86_400)

        # the old validator's database stopped at the block before the height; as the new release
        # it starts from it and rejoins the same chain
        old.start()
        assert int(old.rpc("chain_getHeader", [])["number"], 16) >= at - 1
        top = max(m.finalized_number() for m in new)
        net.wait_finalized(top + 2, net.validators, timeout=60)
        net.assert_same_chain(net.validators)
    finally:
        codes = net.stop()
        print(f"exit codes {codes}; took until {time.strftime('%H:%M:%S')}")
