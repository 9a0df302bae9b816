"""Fault tests of BFT consensus with real node processes: four validators (`//Validator1..4`, the
`local` spec) on loopback, started as `gridchain testnet` starts them (`node.testnet`).

What each test checks, from outside, over JSON-RPC:
  1. blocks are finalized on all four nodes, with the same hash at every height, each carrying a
     commit certificate (justification `BFT1`) signed by a quorum of the set;
  2. a validator SIGKILLed keeps nobody waiting (f = 1): the others go on finalizing while it is down;
     restarted with the same command on the same base path, it catches up to the same chain;
  3. the same for a validator SIGSTOPped for 10 s, then continued;
  4. with two of four stopped there is no quorum: no new block is finalized and nothing forks; once
     they are back, finalization resumes;
  5. a transfer reported `finalized` by one node is in that block on every node;
  6. a validator added by governance (a council motion -> validators.add_validator) starts voting: its precommits
     appear in the commit certificates of later blocks.

Tests 1-5 share one network (module fixture); before each, every validator is running again and the
network finalizes; if it cannot be brought back, a fresh network replaces it. Test 6 runs its own
network, whose genesis also licenses `//Validator5`. Every wait is bounded and polls RPC; every process
started is stopped in a `finally`.
"""
from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest

from tests.bft_network import BftNetwork, BftNode, hx, unhex
from tests.council_helpers import pass_motion_rpc
from tests.node_process import NodeRpcError

from consensus.commit import CommitCertificate, InvalidCommit
from consensus.validator_set import ValidatorSet
from genesis.chain_spec import local_spec, to_raw
from node.bft import ENGINE_BFT
from pallets import build_runtime
from pallets import validators as validators_pallet
from primitives import bls
from primitives.hashing import keccak256
from primitives.keys import Keypair, dev_keypair
from rpc.client import Client, RpcError

pytestmark = pytest.mark.slow   # real node processes

VALIDATOR_KEYS = [Keypair.from_uri(f"//Validator{i}") for i in range(1, 6)]
NAME_OF = {kp.public_key: f"//Validator{i}" for i, kp in enumerate(VALIDATOR_KEYS, start=1)}
ALICE, BOB, CHARLIE, DAVE = (dev_keypair(n) for n in ("Alice", "Bob", "Charlie", "Dave"))

#: how long a healthy network may take to finalize a few blocks (a block takes ~1.2 s; the machine
#: may be shared and slow)
PROGRESS_TIMEOUT = 60.0
CATCH_UP_TIMEOUT = 90.0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def certificate_at(node: BftNode, number: int) -> tuple[str, CommitCertificate]:
    """(block hash, its commit certificate) of the canonical block #number on `node`."""
    block_hash = node.block_hash(number)
    assert block_hash is not None, f"{node.name} has no block #{number}"
    block = node.rpc("chain_getBlock", [block_hash])
    certs = [unhex(data) for engine, data in (block["justifications"] or []) if unhex(engine) == ENGINE_BFT]
    assert len(certs) == 1, f"{node.name}: block #{number} has {len(certs)} BFT1 justifications"
    cert = CommitCertificate.decode(certs[0])
    assert cert.height == number and hx(cert.block_hash) == block_hash, \
        f"{node.name}: the certificate of #{number} names #{cert.height} {hx(cert.block_hash)}"
    return block_hash, cert


def signers(cert: CommitCertificate) -> list[str]:
    return [NAME_OF.get(s.validator, hx(s.validator)) for s in cert.signatures]


def check_certificates(node: BftNode, numbers: range, vset: ValidatorSet, genesis: bytes) -> None:
    for number in numbers:
        _, cert = certificate_at(node, number)
        try:
            cert.verify(vset, genesis)
        except InvalidCommit as e:
            raise AssertionError(f"{node.name}: certificate of #{number} (signers {signers(cert)}) does "
                                 f"not verify: {e}") from None


def max_finalized(nodes: list[BftNode]) -> int:
    return max(n.finalized_number() for n in nodes)


def others(net: BftNetwork, *excluded: BftNode) -> list[BftNode]:
    return [n for n in net.validators if n not in excluded]


def wait_signed(net: BftNetwork, key: Keypair, after: int, nodes: list[BftNode], timeout: float) -> dict[str, list[int]]:
    """Until `key`'s precommit is in the commit certificate of some height > `after` on one of `nodes`
    (each node stores the certificate it collected itself: 2f+1 precommits, not necessarily all);
    returns {node: heights whose certificate it signs} of what was scanned."""
    scanned = {n.name: after for n in nodes}
    found: dict[str, list[int]] = {n.name: [] for n in nodes}

    def signed() -> bool:
        for n in nodes:
            for number in range(scanned[n.name] + 1, n.finalized_number() + 1):
                _, cert = certificate_at(n, number)
                if any(s.validator == key.public_key for s in cert.signatures):
                    found[n.name].append(number)
                scanned[n.name] = number
        return any(found.values())
    net.poll(f"{NAME_OF[key.public_key]}'s precommit in a certificate after #{after}", signed, timeout, interval=0.5)
    return found


def catch_up(net: BftNetwork, node: BftNode, peers: list[BftNode], timeout: float = CATCH_UP_TIMEOUT) -> int:
    """Wait until `node`'s finalized head reaches the height its peers had finalized when it came back,
    then until all of them finalize a block beyond that together, and until `node` votes again (its
    precommit signs a later certificate); returns the common finalized height then."""
    target = max_finalized(peers)
    net.poll(f"{node.name} to catch up to #{target}",
             lambda: node.finalized_number() >= target, timeout)
    group = [node, *peers]
    net.wait_finalized(target + 2, group, timeout=PROGRESS_TIMEOUT)
    key = Keypair.from_uri(node.spec.key_uri)
    signed = wait_signed(net, key, target, group, PROGRESS_TIMEOUT)
    print(f"{node.name} votes again: its precommits sign certificates {signed}")
    return net.assert_same_chain(group)


class SharedNetwork:
    """The network of tests 1-5; `healthy()` brings every validator back (or starts a fresh network)."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.net: BftNetwork | None = None
        self.generation = 0

    def _fresh(self) -> BftNetwork:
        self.generation += 1
        self.net = BftNetwork(self.factory.mktemp(f"bft{self.generation}"), 4, spec=raw_spec(4))
        self.net.start()
        return self.net

    def healthy(self) -> BftNetwork:
        net = self.net or self._fresh()
        try:
            for n in net.validators:
                if n.paused:
                    n.resume()
                if not n.running():
                    n.start(wait=False)
            for n in net.validators:
                n.wait_ready()
            net.wait_finalized(max_finalized(net.validators) + 1, net.validators, timeout=PROGRESS_TIMEOUT)
            return net
        except (AssertionError, RuntimeError, TimeoutError) as e:
            print(f"the shared network did not recover ({str(e)[:2000]}); starting a fresh one", file=sys.stderr)
            net.stop()
            return self._fresh()

    def stop(self) -> None:
        if self.net is not None:
            self.net.stop()


_RAW_SPECS: dict[str, dict] = {}


def raw_spec(validators: int, licensed_extra: tuple[str, ...] = ()) -> dict:
    """The raw `local` spec with `validators` validators, plus validator licences (not set membership)
    for `licensed_extra` key URIs; built once per module."""
    key = f"{validators}:{','.join(licensed_extra)}"
    if key not in _RAW_SPECS:
        spec = local_spec(validators)
        participants = spec["genesis"]["runtimeGenesis"]["config"]["identity"]["participants"]
        for uri in licensed_extra:
            participants.append({"address": Keypair.from_uri(uri).address(), "roles": ["validator_operator"]})
        _RAW_SPECS[key] = to_raw(spec, build_runtime())
    return _RAW_SPECS[key]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    holder = SharedNetwork(tmp_path_factory)
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def net(shared) -> BftNetwork:
    """The shared network, every validator running and finalizing."""
    network = shared.healthy()
    try:
        yield network
    finally:
        # leave nothing paused between tests (a paused process cannot be stopped gracefully either)
        for n in network.nodes:
            if n.paused:
                n.resume()


# ---------------------------------------------------------------------------------------------
# 1. finality and agreement
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_all_four_finalize_the_same_blocks(net):
    start = time.monotonic()
    heights = net.wait_finalized(max_finalized(net.validators) + 3, net.validators, timeout=PROGRESS_TIMEOUT)
    top = net.assert_same_chain(net.validators)
    assert top >= min(heights)
    genesis = unhex(net.validators[0].block_hash(0))
    vset = ValidatorSet.from_keys(kp.public_key for kp in VALIDATOR_KEYS[:4])
    for n in net.validators:
        # the finalized head is canonical on its node, and every block up to it carries a quorum certificate
        number, head = n.finalized()
        assert n.block_hash(number) == head
        check_certificates(n, range(1, top + 1), vset, genesis)
    print(f"all four finalized #{top} with the same hashes ({time.monotonic() - start:.1f} s)")


# ---------------------------------------------------------------------------------------------
# 2. a crashed validator
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_sigkilled_validator_restarts_and_catches_up(net):
    victim = net.validators[1]
    rest = others(net, victim)
    net.wait_finalized(max_finalized(net.validators), net.validators, timeout=PROGRESS_TIMEOUT)
    victim.kill()
    at_kill = max_finalized(rest)
    # f = 1: the other three keep finalizing while it is down
    net.wait_finalized(at_kill + 3, rest, timeout=PROGRESS_TIMEOUT)
    net.assert_same_chain(rest)
    down_until = max_finalized(rest)

    victim.start()   # same command, same base path
    top = catch_up(net, victim, rest)
    assert top > down_until
    print(f"{victim.name}: killed at #{at_kill}, the others reached #{down_until} meanwhile; "
          f"after restart all four agree up to #{top}")


# ---------------------------------------------------------------------------------------------
# 3. a frozen validator
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_sigstopped_validator_continues_and_catches_up(net):
    victim = net.validators[2]
    rest = others(net, victim)
    victim.pause()
    try:
        paused_at = time.monotonic()
        at_stop = max_finalized(rest)
        # the others keep finalizing during the 10 s pause
        net.wait_finalized(at_stop + 2, rest, timeout=PROGRESS_TIMEOUT)
        remaining = 10.0 - (time.monotonic() - paused_at)
        if remaining > 0:
            time.sleep(remaining)   # the pause lasts 10 s (the progress above is what is asserted)
        during = max_finalized(rest)
        net.assert_same_chain(rest)
    finally:
        victim.resume()
    print(f"{victim.name} paused {time.monotonic() - paused_at:.1f} s: the others went from #{at_stop} to #{during}")
    assert during >= at_stop + 2
    top = catch_up(net, victim, rest)
    assert top > during


# ---------------------------------------------------------------------------------------------
# 4. no quorum: no progress, no fork; progress resumes
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_two_of_four_down_halts_finality_without_forking_then_resumes(net):
    killed, frozen = net.validators[3], net.validators[0]
    rest = others(net, killed, frozen)
    killed.kill()
    frozen.pause()
    try:
        # a decision already under way may still land: let it settle, then take the height
        time.sleep(3.0)
        halted_at = max_finalized(rest)
        observed = {n.name: [] for n in rest}
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            for n in rest:
                observed[n.name].append(n.finalized_number())
            time.sleep(0.5)
        assert all(max(hs) <= halted_at for hs in observed.values()), \
            f"finalized past #{halted_at} with two of four validators down: {observed}\n{net.logs()}"
        net.assert_same_chain(rest)   # nothing forked among the survivors
        best = {n.name: n.best_number() for n in rest}
        assert all(b <= halted_at for b in best.values()), f"best blocks past #{halted_at}: {best}"
    finally:
        frozen.resume()
    killed.start()
    net.wait_finalized(halted_at + 2, net.validators, timeout=CATCH_UP_TIMEOUT)
    top = net.assert_same_chain(net.validators)
    print(f"finality halted at #{halted_at} with two down; after they came back all four agree up to #{top}")


# ---------------------------------------------------------------------------------------------
# 5. a finalized transaction is everywhere
# ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_finalized_transfer_is_in_its_block_on_every_node(net):
    entry = net.validators[1]
    with Client(entry.url, timeout=30) as c:
        xt = c.build_extrinsic(BOB, "balances", "transfer", [CHARLIE.public_key, 12_345])
        result = c.submit_and_watch(xt, until="finalized", timeout=PROGRESS_TIMEOUT)
    assert result.status == "finalized" and result.block_hash is not None
    assert result.success is True, f"the transfer failed in its block: {result.error}"
    block_hash = hx(result.block_hash)
    xt_hex = hx(xt)

    def everywhere():
        numbers = set()
        for n in net.validators:
            block = n.rpc("chain_getBlock", [block_hash])
            if block is None:
                return None
            assert xt_hex in block["block"]["extrinsics"], f"{n.name}: block {block_hash} lacks the transfer"
            number = int(block["block"]["header"]["number"], 16)
            if n.finalized_number() < number:
                return None
            assert n.block_hash(number) == block_hash, f"{n.name}: block {block_hash} is not canonical"
            numbers.add(number)
        return numbers
    numbers = net.poll(f"block {block_hash} final on every node", everywhere, PROGRESS_TIMEOUT)
    print(f"transfer {hx(result.hash)} finalized in #{numbers.pop()} {block_hash}, present on all four")


# ---------------------------------------------------------------------------------------------
# 6. a validator added by governance
# ---------------------------------------------------------------------------------------------

def validators_on_chain(node: BftNode, at: str | None = None) -> list[bytes]:
    raw = node.rpc("state_getStorage", [hx(validators_pallet.validators.prefix), *([at] if at else [])])
    assert raw is not None, f"{node.name}: no validators in state"
    infos = validators_pallet.validators.value_type.from_plain(msgpack.unpackb(unhex(raw), raw=False))
    return [info.account for info in infos]


@pytest.mark.timeout(300)
def test_validator_added_by_governance_starts_voting(tmp_path):
    newcomer = VALIDATOR_KEYS[4]
    net = BftNetwork(tmp_path / "net", 4, spec=raw_spec(4, ("//Validator5",)), extra_keys=("//Validator5",))
    fifth = net.nodes[4]
    try:
        net.start(net.validators)
        net.wait_finalized(2, net.validators, timeout=PROGRESS_TIMEOUT)
        # not in the set yet: the fifth node follows (it runs with --validator --key //Validator5)
        fifth.start()
        target = max_finalized(net.validators)
        net.poll(f"{fifth.name} to sync as a follower to #{target}", lambda: fifth.finalized_number() >= target,
                 CATCH_UP_TIMEOUT)
        assert newcomer.public_key not in validators_on_chain(fifth)

        sk = bls.secret_from_seed(newcomer.seed)
        # the local chain has no sudo key: the council (Alice, Dave, the four validator operators)
        # passes the motion with four ayes of six (two thirds, the validators pallet's threshold)
        with Client(net.validators[0].url, timeout=30) as c:
            outcome = pass_motion_rpc(c, ALICE, [DAVE, VALIDATOR_KEYS[0], VALIDATOR_KEYS[1]], "validators",
                                      "add_validator", [newcomer.public_key, bls.sk_to_pk(sk), bls.pop_prove(sk)],
                                      timeout=PROGRESS_TIMEOUT)
            assert outcome.result is None, f"the root call add_validator failed: {outcome.result}"
        added_at = outcome.number
        print(f"add_validator finalized in #{added_at}; the set of #{added_at + 1} on has five validators")

        # (a) the validators pallet lists five, on every node (the follower included)
        everyone = net.nodes
        net.wait_finalized(added_at, everyone, timeout=PROGRESS_TIMEOUT)
        for n in everyone:
            on_chain = validators_on_chain(n, hx(outcome.block_hash))
            assert len(on_chain) == 5 and newcomer.public_key in on_chain, \
                f"{n.name}: validators after #{added_at}: {[NAME_OF.get(a, hx(a)) for a in on_chain]}"

        # (b) its precommits sign certificates of later heights; every later certificate is a quorum of
        # the five (4 of 5)
        genesis = unhex(fifth.block_hash(0))
        five = ValidatorSet.from_keys(kp.public_key for kp in VALIDATOR_KEYS)
        signed_heights: dict[str, set[int]] = {n.name: set() for n in everyone}
        checked = {n.name: added_at for n in everyone}

        def newcomer_votes() -> bool:
            for n in everyone:
                top = n.finalized_number()
                for number in range(checked[n.name] + 1, top + 1):
                    _, cert = certificate_at(n, number)
                    try:
                        cert.verify(five, genesis)
                    except InvalidCommit as e:
                        raise AssertionError(f"{n.name}: certificate of #{number} (signers {signers(cert)}) "
                                             f"is not a quorum of the five: {e}") from None
                    if any(s.validator == newcomer.public_key for s in cert.signatures):
                        signed_heights[n.name].add(number)
                    checked[n.name] = number
            heights = set().union(*signed_heights.values())
            return len(heights) >= 3 and all(checked[n.name] >= added_at + 3 for n in everyone)
        net.poll("//Validator5's precommits in later commit certificates", newcomer_votes, CATCH_UP_TIMEOUT,
                 interval=0.5)
        print(f"//Validator5 signed certificates of heights { {k: sorted(v) for k, v in signed_heights.items()} }")
        net.assert_same_chain(everyone)
    finally:
        net.stop()


# ---------------------------------------------------------------------------------------------
# 7. an untrusted transaction nested too deep cannot halt the network
# ---------------------------------------------------------------------------------------------

PEER_SCRIPT = Path(__file__).resolve().parent / "p2p_peer.py"


class GossipPeer:
    """tests/p2p_peer.py as an outside peer of the network, publishing what the test gives it."""

    def __init__(self, base: Path, genesis: bytes, bootnodes: list[str]) -> None:
        self.log = open(base.with_suffix(".log"), "ab")
        args = [sys.executable, str(PEER_SCRIPT), "--base", str(base), "--genesis", genesis.hex()]
        for addr in bootnodes:
            args += ["--bootnode", addr]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.events.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the gossip peer exited ({self.proc.returncode})")
                continue
            if e.get("event") == event:
                return e
        raise AssertionError(f"the gossip peer sent no {event!r} within {timeout} s")

    def send(self, **cmd) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send(cmd="stop")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.mark.timeout(240)
def test_a_deeply_nested_transaction_through_rpc_and_gossip_does_not_halt_finality(net, tmp_path):
    from tests.test_untrusted_calls import nested_sudo_bytes, signed_from_call_bytes
    entry = net.validators[0]
    genesis = unhex(entry.block_hash(0))
    with Client(entry.url, timeout=30) as c:
        nonce = c.request("system_accountNextIndex", [BOB.address()])
        attacks = [signed_from_call_bytes(BOB, nested_sudo_bytes(levels), nonce, genesis)
                   for levels in (9, 322, 1000)]
        # through RPC: each is refused at once, with a JSON-RPC error, and nothing is pooled
        for xt in attacks:
            with pytest.raises(RpcError) as refused:
                c.request("author_submitExtrinsic", [hx(xt)])
            assert refused.value.code in (1001, 1010), refused.value
        witness = c.build_extrinsic(CHARLIE, "balances", "transfer", [BOB.public_key, 777])
    start = max_finalized(net.validators)
    # through gossip: an outside peer publishes the attacks in the same batch as a valid transfer
    # (the witness that the batch was delivered and judged)
    peer = GossipPeer(tmp_path / "peer", genesis, [n.spec.p2p_addr for n in net.validators])
    try:
        peer.wait("ready", 60)
        net.poll("the gossip peer in the validators' transaction topic",
                 lambda: (peer.send(cmd="topic_peers", kind="tx"), peer.wait("topic_peers", 10)["peers"])[1],
                 PROGRESS_TIMEOUT, interval=1.0)
        peer.send(cmd="publish", kind="tx", data=msgpack.packb([*attacks, witness], use_bin_type=True).hex())
        witness_hash = hx(keccak256(witness))

        def witness_final() -> int | None:
            for n in net.validators:
                number = n.finalized_number()
                for k in range(start + 1, number + 1):
                    block = n.rpc("chain_getBlock", [n.block_hash(k)])
                    if hx(witness) in block["block"]["extrinsics"]:
                        return k
            return None
        included = net.poll(f"the gossiped transfer {witness_hash} in a finalized block", witness_final,
                            PROGRESS_TIMEOUT)
    finally:
        peer.stop()
    # and the network keeps finalizing, all four on one chain, without any attack in a block
    net.wait_finalized(included + 3, net.validators, timeout=PROGRESS_TIMEOUT)
    top = net.assert_same_chain(net.validators)
    attack_hex = {hx(a) for a in attacks}
    for k in range(start + 1, top + 1):
        block = entry.rpc("chain_getBlock", [entry.block_hash(k)])
        assert not attack_hex & set(block["block"]["extrinsics"]), f"an attack reached block #{k}"
    print(f"attacks refused; the gossiped transfer finalized in #{included}; all four agree up to #{top}")


@pytest.mark.timeout(180)
def test_engine_create_block_is_refused_on_a_bft_chain(net):
    """A validator that authored a block of its own, outside consensus, would leave the network."""
    target = net.validators[2]
    before = target.finalized_number()
    with pytest.raises(NodeRpcError) as refused:
        target.rpc("engine_createBlock", [True, True])
    assert refused.value.error["code"] == -32603 and "BFT consensus" in refused.value.error["message"]
    net.wait_finalized(before + 2, net.validators, timeout=PROGRESS_TIMEOUT)
    net.assert_same_chain(net.validators)
