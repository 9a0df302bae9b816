"""Driving a council motion to enactment in tests: propose, votes, the enactment delay, enact.

Two flavours of one procedure, for chains without a sudo key:
- `pass_motion(chain, proposer, voters, pallet, call, *args)` on the in-process ChainHarness;
- `pass_motion_rpc(client, proposer, voters, pallet, call, args)` on a running network, through the
  RPC client library only (as an operator's tools would).
Both report the `Enacted` result: None when the root call succeeded, else its error
[pallet index, error index, sentence], with the block it was enacted in.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgpack

from primitives.keys import Keypair
from rpc.client import Client, call_from_metadata
from runtime.executive import BlockResult
from tests.runtime_harness import ChainHarness, events_named


def plain_call(chain: ChainHarness, pallet: str, call: str, *args: Any) -> list:
    """`pallet.call(*args)` as the plain call a motion carries: [pallet index, call index, [args]]."""
    p = chain.runtime.by_name[pallet]
    cd = p.calls_by_name[call]
    return [p.index, cd.index, [t.to_plain(a) for t, a in zip(cd.arg_types, args)]]


def council_events(chain: ChainHarness, result: BlockResult, name: str) -> list:
    return events_named(result, chain.runtime, "council", name)


@dataclass
class Enactment:
    motion_id: int
    result: Any              # None: the root call succeeded; else [pallet, error, sentence]
    block: BlockResult       # the block the motion was enacted in (the call's events are there)


def pass_motion(chain: ChainHarness, proposer: Keypair, voters: list[Keypair], pallet: str, call: str,
                *args: Any) -> Enactment:
    """Propose pallet.call(*args), vote aye with every voter in one block, wait out the enactment
    delay and enact. Asserts that the motion passed; voters beyond the threshold fail harmlessly."""
    r = chain.block(chain.xt(proposer, "council", "propose", plain_call(chain, pallet, call, *args)))
    proposed = council_events(chain, r, "Proposed")
    assert proposed, f"the motion was refused: {events_named(r, chain.runtime, 'system', 'ExtrinsicFailed')}"
    motion_id = proposed[0][0]
    passed = council_events(chain, r, "Passed")
    if voters and not passed:
        r = chain.block(*[chain.xt(v, "council", "vote", motion_id, True) for v in voters])
        passed = council_events(chain, r, "Passed")
    assert passed, f"motion {motion_id} did not pass"
    enact_at = passed[0][3]
    while chain.number + 1 < enact_at:
        chain.block()
    r = chain.block(chain.xt(proposer, "council", "enact", motion_id))
    enacted = council_events(chain, r, "Enacted")
    assert enacted and enacted[0][0] == motion_id, "the motion was not enacted"
    return Enactment(motion_id, enacted[0][1], r)


# --- over RPC ------------------------------------------------------------------------------------

def block_events(client: Client, block_hash: bytes, pallet: str, event: str) -> list:
    """The fields of every `pallet.event` in a block, read from system.events over RPC."""
    md = client.metadata()
    pallets = {p["name"]: p for p in md["pallets"]}
    prefix = next(i["prefix"] for i in pallets["system"]["storage"] if i["name"] == "events")
    p = pallets[pallet]
    index = next(e["index"] for e in p["events"] if e["name"] == event)
    raw = client.get_storage(bytes.fromhex(prefix[2:]), block_hash)
    events = msgpack.unpackb(raw, raw=False) if raw else []
    return [data for _phase, pi, ei, data in events if pi == p["index"] and ei == index]


@dataclass
class RpcEnactment:
    motion_id: int
    result: Any              # None: the root call succeeded; else [pallet, error, sentence]
    block_hash: bytes        # the finalized block the motion was enacted in
    number: int              # and its number


def _submit(client: Client, who: Keypair, call: str, args: list, timeout: float) -> bytes:
    xt = client.build_extrinsic(who, "council", call, args)
    result = client.submit_and_watch(xt, until="finalized", timeout=timeout)
    assert result.success is True, f"council.{call} by {who.address()} failed: {result.error}"
    return result.block_hash


def best_number(client: Client) -> int:
    return int(client.request("chain_getHeader", [])["number"], 16)


def pass_motion_rpc(client: Client, proposer: Keypair, voters: list[Keypair], pallet: str, call: str,
                    args: list | dict, *, timeout: float = 120) -> RpcEnactment:
    """Propose pallet.call(args) through the node at `client`, vote aye with `voters` one by one
    until the motion passes, wait for its enactment block and enact it. Every extrinsic is followed
    to finality; `timeout` bounds each step."""
    inner = call_from_metadata(client.metadata(), pallet, call, args)
    block = _submit(client, proposer, "propose", [inner.to_plain()], timeout)
    mine = [e for e in block_events(client, block, "council", "Proposed") if e[1] == proposer.public_key]
    assert mine, "no Proposed event for the proposal"
    motion_id = mine[-1][0]
    passed = [e for e in block_events(client, block, "council", "Passed") if e[0] == motion_id]
    for v in voters:
        if passed:
            break
        block = _submit(client, v, "vote", [motion_id, True], timeout)
        passed = [e for e in block_events(client, block, "council", "Passed") if e[0] == motion_id]
    assert passed, f"motion {motion_id} did not pass with the votes given"
    enact_at = passed[0][3]
    deadline = time.monotonic() + timeout
    while best_number(client) + 1 < enact_at:
        assert time.monotonic() < deadline, f"the chain did not reach block {enact_at} in {timeout} s"
        time.sleep(0.2)
    block = _submit(client, proposer, "enact", [motion_id], timeout)
    enacted = [e for e in block_events(client, block, "council", "Enacted") if e[0] == motion_id]
    assert enacted, f"motion {motion_id} was not enacted"
    number = int(client.request("chain_getHeader", ["0x" + block.hex()])["number"], 16)
    return RpcEnactment(motion_id, enacted[0][1], block, number)
