"""A deterministic simulation of N validators running `Tendermint` over a faulty network.

Everything is driven by one `random.Random(seed)` and a virtual clock (an event queue in milliseconds),
so a seed replays exactly: `run(seed, ...)` twice gives the same result. The network delays every
message independently (which reorders them), drops some, and splits the validators into partitions
that later heal. Validators crash and restart: a crash loses what the in-memory WAL had not synced
(a random part of it), and the restart rebuilds the machine with `Tendermint.recover` from what is
left. Byzantine validators run the honest machine but lie, with one of two strategies: "split"
signs a second, conflicting proposal or vote at every step and splits the peers afresh between the
two versions (a few get both), so that some honest validators see quorums that others do not;
"lock-attack" runs the targeted attack that locking exists to defeat (`_Simulation.lock_attack`) and
withholds commit certificates. Catch-up answers can be slowed (`catch_up_delay_ms`), as block sync
is slower than votes; without that, a laggard learns of a decision before the attack can finish.

Gossip is lossy, so the simulated node does what a real one must: when its (height, round, step) has
not moved for a gossip interval it re-sends `catch_up_messages()`, and a node that receives a message
for a height it has already decided answers from its block store with that height's commit
certificate, which the laggard feeds to `on_commit` (a real node would sync the block as well).

Checks, recorded as violations in `SimResult`:
- safety: no two honest validators decide different blocks at one height; every decision has a
  commit certificate that verifies; no decided block is one the application calls invalid;
- no honest validator ever signs two different messages for one (height, round, step), and
  evidence only ever names a Byzantine validator (and verifies);
- liveness: if at most f validators are Byzantine or down for good, every other validator decides
  every height by the end (all partitions heal and all other crashes restart).

    from consensus.simulation import run
    result = run(seed=7, n_validators=4, heights=4, faults="mixed")
    assert result.ok, result.violations
"""
from __future__ import annotations

import functools
import heapq
import random
from dataclasses import dataclass, field

from consensus.commit import CommitCertificate, InvalidCommit
from consensus.messages import Message, Proposal, Step, sign_proposal, sign_vote
from consensus.signer import MemorySigner
from consensus.tendermint import Action, Broadcast, Decide, EvidenceFound, ScheduleTimeout, Tendermint, TimeoutConfig
from consensus.validator_set import ValidatorSet
from consensus.wal import MemoryWAL
from primitives.hashing import keccak256
from primitives.keys import Keypair

GENESIS_HASH = keccak256(b"gridchain/simulation/genesis")
#: blocks the simulated application rejects start with this (only Byzantine proposers make them)
INVALID_PREFIX = b"BAD!"
#: short timeouts: the simulated network's delays are tens of milliseconds
SIM_TIMEOUTS = TimeoutConfig(propose_ms=400, propose_delta_ms=200, prevote_ms=200, prevote_delta_ms=100,
                             precommit_ms=200, precommit_delta_ms=100)
GOSSIP_INTERVAL_MS = 300
SCENARIOS = ("clean", "lossy", "slow", "partition", "crash", "byzantine", "mixed", "stalled")


@dataclass(frozen=True)
class Partition:
    """From start_ms to end_ms, messages only flow inside each group."""

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...]


@dataclass(frozen=True)
class Crash:
    """Validator `node` stops at at_ms and restarts at restart_ms (None: never)."""

    node: int
    at_ms: int
    restart_ms: int | None


@dataclass(frozen=True)
class Faults:
    """What goes wrong in a run. Delays are drawn per message from [min_delay_ms, max_delay_ms]."""

    drop_rate: float = 0.0
    min_delay_ms: int = 5
    max_delay_ms: int = 50
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    byzantine: tuple[int, ...] = ()
    #: "split" (random two-faced messages) or "lock-attack" (the targeted attack on locking, see
    #: `_Simulation.lock_attack`)
    byzantine_strategy: str = "split"
    #: extra delay before a node answers a laggard with a certificate (block sync is slower than votes)
    catch_up_delay_ms: int = 0

    def down_for_good(self) -> set[int]:
        return {c.node for c in self.crashes if c.restart_ms is None}

    def expects_liveness(self, n_validators: int) -> bool:
        """At most f validators faulty for good (Byzantine, or crashed without restart)."""
        return len(set(self.byzantine) | self.down_for_good()) <= (n_validators - 1) // 3

    def last_fault_ms(self) -> int:
        ends = [p.end_ms for p in self.partitions] + [c.restart_ms or c.at_ms for c in self.crashes]
        return max(ends, default=0)


def random_faults(scenario: str, rng: random.Random, n: int) -> Faults:
    """Faults of a named scenario, drawn from `rng`. All but "stalled" keep at most f validators
    faulty for good, so liveness is expected; "stalled" crashes f+1 for good (safety only)."""
    f = (n - 1) // 3
    nodes = list(range(n))

    def split() -> tuple[frozenset[int], ...]:
        shuffled = rng.sample(nodes, n)
        cut = rng.randint(1, n - 1)
        return (frozenset(shuffled[:cut]), frozenset(shuffled[cut:]))

    def partitions(count: int) -> tuple[Partition, ...]:
        out: list[Partition] = []
        for _ in range(count if n > 1 else 0):
            start = rng.randint(0, 3000)
            out.append(Partition(start, start + rng.randint(300, 5000), split()))
        return tuple(out)

    def crashes(count: int, permanent: int) -> tuple[Crash, ...]:
        out = []
        for i, node in enumerate(rng.sample(nodes, count)):
            at = rng.randint(0, 4000)
            out.append(Crash(node, at, None if i < permanent else at + rng.randint(100, 4000)))
        return tuple(out)

    if scenario == "clean":
        return Faults()
    if scenario == "lossy":
        return Faults(drop_rate=rng.uniform(0.05, 0.35), max_delay_ms=rng.randint(20, 200))
    if scenario == "slow":
        return Faults(min_delay_ms=rng.randint(20, 100), max_delay_ms=rng.randint(300, 1000))
    if scenario == "partition":
        return Faults(drop_rate=rng.uniform(0, 0.1), partitions=partitions(rng.randint(1, 2)))
    if scenario == "crash":
        return Faults(crashes=crashes(rng.randint(1, n), permanent=rng.randint(0, f)))
    if scenario == "byzantine":
        return Faults(byzantine=tuple(sorted(rng.sample(nodes, rng.randint(min(f, 1), f)))),
                      max_delay_ms=rng.randint(20, 150),          # with n < 4 (f = 0) nobody may lie
                      byzantine_strategy=rng.choice(("split", "lock-attack")),
                      catch_up_delay_ms=rng.choice((0, rng.randint(500, 5000))))
    if scenario == "mixed":
        byzantine = tuple(sorted(rng.sample(nodes, rng.randint(0, f))))
        honest = [i for i in nodes if i not in byzantine]
        count = rng.randint(0, len(honest))
        permanent = rng.randint(0, f - len(byzantine)) if count else 0
        crash_list = []
        for i, node in enumerate(rng.sample(honest, count)):
            at = rng.randint(0, 4000)
            crash_list.append(Crash(node, at, None if i < permanent else at + rng.randint(100, 4000)))
        return Faults(drop_rate=rng.uniform(0, 0.2), max_delay_ms=rng.randint(20, 300),
                      partitions=partitions(rng.randint(0, 2)), crashes=tuple(crash_list), byzantine=byzantine,
                      byzantine_strategy=rng.choice(("split", "lock-attack")),
                      catch_up_delay_ms=rng.choice((0, rng.randint(500, 5000))))
    if scenario == "stalled":
        return Faults(crashes=crashes(f + 1, permanent=f + 1), drop_rate=rng.uniform(0, 0.1))
    raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")


@dataclass
class SimResult:
    """What happened: decisions per validator (block hash per height, in order) and any violations."""

    seed: int
    n_validators: int
    heights: int
    faults: Faults
    decided: dict[int, list[bytes]]
    violations: list[str]
    evidence: list = field(default_factory=list)
    time_ms: int = 0
    messages: int = 0
    max_round: int = 0
    liveness_expected: bool = True

    @property
    def ok(self) -> bool:
        return not self.violations


@functools.lru_cache(maxsize=64)
def validator_keys(n: int) -> tuple[Keypair, ...]:
    """Deterministic keys of the simulated validators (seed = keccak256("sim-validator" || i))."""
    return tuple(Keypair.from_seed(keccak256(b"sim-validator" + i.to_bytes(4, "big"))) for i in range(n))


class _App:
    """The simulated chain: proposes a hash naming (height, round, proposer); rejects INVALID_PREFIX."""

    def __init__(self, index: int) -> None:
        self.index = index

    def propose_value(self, height: int, round: int) -> bytes | None:
        return keccak256(b"block" + height.to_bytes(8, "big") + round.to_bytes(4, "big") + self.index.to_bytes(2, "big"))

    def validate_value(self, height: int, block_hash: bytes) -> bool | None:
        return not block_hash.startswith(INVALID_PREFIX)


class _Node:
    def __init__(self, index: int, keypair: Keypair, byzantine: bool) -> None:
        self.index = index
        self.keypair = keypair
        self.byzantine = byzantine
        self.wal = MemoryWAL()                       # the node's disk: survives crashes
        self.machine: Tendermint | None = None
        self.up = False
        self.incarnation = 0
        self.decided: dict[int, CommitCertificate] = {}   # the block store: survives crashes
        self.last_state: tuple | None = None
        self.answered: dict[tuple[int, int], int] = {}    # (peer, height) -> time a certificate was sent
        # Byzantine only: blocks proposed per (height, round), and lock-attack plans
        self.seen_values: dict[tuple[int, int], set[bytes]] = {}
        self.plans: dict[tuple[int, int], tuple[int, int, bytes]] = {}
        self.backed: set[tuple[int, int]] = set()


_DELIVER, _TIMER, _TICK, _CRASH, _RESTART = range(5)


class _Simulation:
    def __init__(self, seed: int, n: int, heights: int, faults: Faults, max_time_ms: int,
                 machine_class: type[Tendermint] = Tendermint) -> None:
        self.rng = random.Random(seed)
        self.machine_class = machine_class
        self.heights, self.faults, self.max_time_ms = heights, faults, max_time_ms
        keys = validator_keys(n)
        self.validators = ValidatorSet.from_keys(k.public_key for k in keys)
        self.nodes = [_Node(i, keys[i], i in faults.byzantine) for i in range(n)]
        self.queue: list[tuple] = []
        self.seq = 0
        self.now = 0
        self.messages = 0
        self.violations: list[str] = []
        self.evidence: list = []
        self.first_decision: dict[int, bytes] = {}
        self.signed: dict[tuple[bytes, int, int, int], Message] = {}
        self.max_round = 0

    # -- event queue ------------------------------------------------------------------------------------
    def push(self, at_ms: int, *event: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at_ms, self.seq) + event)

    def run(self) -> None:
        for node in self.nodes:
            self.boot(node)
            self.push(self.rng.randint(1, GOSSIP_INTERVAL_MS), _TICK, node.index)
        for c in self.faults.crashes:
            self.push(c.at_ms, _CRASH, c.node)
            if c.restart_ms is not None:
                self.push(c.restart_ms, _RESTART, c.node)
        while self.queue and not self.finished():
            event = heapq.heappop(self.queue)
            self.now = event[0]
            if self.now > self.max_time_ms:
                break
            kind = event[2]
            if kind == _DELIVER:
                self.deliver(*event[3:])
            elif kind == _TIMER:
                node, incarnation, step, height, round = event[3:]
                n = self.nodes[node]
                if n.up and n.incarnation == incarnation and n.machine is not None:
                    self.apply(n, n.machine.on_timeout(step, height, round).actions)
            elif kind == _TICK:
                self.tick(self.nodes[event[3]])
            elif kind == _CRASH:
                self.crash(self.nodes[event[3]])
            else:
                self.boot(self.nodes[event[3]])

    def finished(self) -> bool:
        down = self.faults.down_for_good()
        return all(len(n.decided) >= self.heights for n in self.nodes if not n.byzantine and n.index not in down)

    # -- nodes ----------------------------------------------------------------------------------------
    def boot(self, node: _Node) -> None:
        """Start (or restart after a crash): rebuild signer and machine from the node's WAL."""
        node.up = True
        signer = MemorySigner(node.keypair, GENESIS_HASH, node.wal)
        machine_class = Tendermint if node.byzantine else self.machine_class
        node.machine = machine_class(self.validators, GENESIS_HASH, _App(node.index), signer, SIM_TIMEOUTS,
                                     journal=node.wal)
        height = max(node.decided, default=0) + 1
        if height <= self.heights:
            self.apply(node, node.machine.recover(node.wal.entries(), height).actions)

    def crash(self, node: _Node) -> None:
        node.up = False
        node.incarnation += 1
        node.machine = None
        node.wal.crash(self.rng)

    def tick(self, node: _Node) -> None:
        """Re-gossip when stuck: lossy links lose messages, and nobody asks for them again."""
        self.push(self.now + GOSSIP_INTERVAL_MS + self.rng.randint(0, 50), _TICK, node.index)
        m = node.machine
        if not node.up or m is None or not m.started or m.is_decided:
            return
        state = (m.height, m.round, m.step)
        if state == node.last_state:
            for msg in m.catch_up_messages():
                self.broadcast(node, msg, equivocate=node.byzantine)
        node.last_state = state

    def deliver(self, to: int, frm: int, msg: Message | CommitCertificate) -> None:
        node = self.nodes[to]
        m = node.machine
        if not node.up or m is None:
            return
        attacking = node.byzantine and self.faults.byzantine_strategy == "lock-attack"
        if node.byzantine and isinstance(msg, Proposal):
            node.seen_values.setdefault((msg.height, msg.round), set()).add(msg.block_hash)
            if attacking:
                self.back_later_proposal(node, msg)
        if msg.height in node.decided and not attacking:   # the sender is behind: answer from the block store
            last = node.answered.get((frm, msg.height))
            if last is None or self.now - last >= GOSSIP_INTERVAL_MS:
                node.answered[(frm, msg.height)] = self.now
                self.send(to, frm, node.decided[msg.height], self.faults.catch_up_delay_ms)
            return
        if isinstance(msg, CommitCertificate):
            outcome = m.on_commit(msg)
        elif isinstance(msg, Proposal):
            outcome = m.on_proposal(msg)
        else:
            outcome = m.on_vote(msg)
        if outcome.rejected is not None and outcome.rejected.peer_fault and not self.nodes[frm].byzantine:
            self.violations.append(f"t={self.now}: node {to} refused {outcome.rejected.name} from honest node {frm}")
        self.apply(node, outcome.actions)

    def apply(self, node: _Node, actions: tuple[Action, ...]) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                self.broadcast(node, a.message, equivocate=node.byzantine)
            elif isinstance(a, ScheduleTimeout):
                self.push(self.now + a.duration_ms, _TIMER, node.index, node.incarnation, a.kind, a.height, a.round)
            elif isinstance(a, Decide):
                self.commit(node, a)
            elif isinstance(a, EvidenceFound):
                self.check_evidence(node, a)

    def commit(self, node: _Node, d: Decide) -> None:
        """The node's application: check the decision, store it, start the next height."""
        if node.byzantine:
            node.decided[d.height] = d.certificate
        else:
            self.check_decision(node, d)
        self.max_round = max(self.max_round, d.round)
        node.wal.compact(d.height + 1)
        if d.height < self.heights and node.machine is not None:
            self.apply(node, node.machine.start(d.height + 1).actions)

    # -- network ----------------------------------------------------------------------------------------
    def send(self, frm: int, to: int, msg: Message | CommitCertificate, extra_delay_ms: int = 0) -> None:
        for p in self.faults.partitions:
            if p.start_ms <= self.now < p.end_ms and not any(frm in g and to in g for g in p.groups):
                return
        if self.faults.drop_rate and self.rng.random() < self.faults.drop_rate:
            return
        self.messages += 1
        self.push(self.now + extra_delay_ms + self.rng.randint(self.faults.min_delay_ms, self.faults.max_delay_ms),
                  _DELIVER, to, frm, msg)

    def broadcast(self, node: _Node, msg: Message, equivocate: bool) -> None:
        if not node.byzantine:
            self.check_not_equivocating(node, msg)
        if equivocate and self.faults.byzantine_strategy == "lock-attack":
            for peer, version in self.lock_attack(node, msg):
                self.send(node.index, peer, version)
            return
        other = self.conflicting(node, msg) if equivocate else None
        for peer in range(len(self.nodes)):
            if peer == node.index:
                continue
            if other is None:
                self.send(node.index, peer, msg)
                continue
            draw = self.rng.random()                 # split the peers: one version, the other, or both
            versions = (msg,) if draw < 0.45 else (other,) if draw < 0.9 else self.rng.sample((msg, other), 2)
            for version in versions:
                self.send(node.index, peer, version)

    def conflicting(self, node: _Node, msg: Message) -> Message:
        """A Byzantine validator's second message for the step, signed without the guard: a proposal
        of a fresh block (sometimes an invalid one), or a vote for another block proposed in the round
        (its own second proposal included) or, failing one, for nil or the round's proposal. Peers are
        split between the two versions afresh at every step, which is what makes the lie effective:
        some see a quorum that others do not."""
        rng, kp = self.rng, node.keypair
        seen = node.seen_values.setdefault((msg.height, msg.round), set())
        if isinstance(msg, Proposal):
            value = keccak256(rng.randbytes(32))
            if rng.random() < 0.2:
                value = INVALID_PREFIX + value[4:]
            seen.update((msg.block_hash, value))
            return sign_proposal(kp, GENESIS_HASH, msg.height, msg.round, value, msg.pol_round)
        others = sorted(seen - {msg.block_hash})
        value = rng.choice(others) if others and (msg.block_hash is None or rng.random() < 0.7) else None
        if value is None and msg.block_hash is None:
            value = keccak256(rng.randbytes(32))
        return sign_vote(kp, GENESIS_HASH, msg.kind, msg.height, msg.round, value)

    def lock_attack(self, node: _Node, msg: Message) -> list[tuple[int, Message]]:
        """The attack that locks exist to stop, aimed at the honest proposer of the next round (the
        victim). In its own round the Byzantine proposer sends block A to everyone but the victim, who
        gets A'; it prevotes A to them and A' to the victim, and precommits A to one honest "decider"
        only, nil to the rest. The decider decides A; the others who precommitted A are locked on it,
        and the victim, who saw no quorum for A, proposes a fresh B next round. The Byzantine then
        votes for B: B can reach a quorum only if a validator locked on A prevotes for it."""
        h, r, rng, kp = msg.height, msg.round, self.rng, node.keypair
        peers = [i for i in range(len(self.nodes)) if i != node.index]
        honest = [i for i in peers if not self.nodes[i].byzantine]
        if isinstance(msg, Proposal):
            if (h, r) not in node.plans:
                following = self.validators.index_of(self.validators.proposer(h, r + 1))
                victim = following if following in honest else rng.choice(honest)
                decider = rng.choice([i for i in honest if i != victim] or [victim])
                node.plans[(h, r)] = (victim, decider, keccak256(rng.randbytes(32)))
            victim, _decider, value = node.plans[(h, r)]
            alt = sign_proposal(kp, GENESIS_HASH, h, r, value, msg.pol_round)
            return [(p, alt if p == victim else msg) for p in peers]
        plan = node.plans.get((h, r))
        if plan is None:                                  # not its round: back the round's proposal
            proposed = sorted(node.seen_values.get((h, r), ()))
            vote = msg if not proposed or msg.block_hash == proposed[0] else \
                sign_vote(kp, GENESIS_HASH, msg.kind, h, r, proposed[0])
            return [(p, vote) for p in peers]
        victim, decider, value = plan
        if msg.kind == Step.PREVOTE:
            alt = sign_vote(kp, GENESIS_HASH, Step.PREVOTE, h, r, value)
            return [(p, alt if p == victim else msg) for p in peers]
        nil = sign_vote(kp, GENESIS_HASH, Step.PRECOMMIT, h, r, None)
        return [(p, msg if p == decider else nil) for p in peers]

    def back_later_proposal(self, node: _Node, p: Proposal) -> None:
        """Lock attack, second half: prevote and precommit at once for the first proposal of any later
        round of a height it attacked, whatever its own machine thinks (it may have moved on)."""
        attacked = [r for (h, r) in node.plans if h == p.height and r < p.round]
        if not attacked or (p.height, p.round) in node.plans or (p.height, p.round) in node.backed:
            return
        node.backed.add((p.height, p.round))
        for kind in (Step.PREVOTE, Step.PRECOMMIT):
            vote = sign_vote(node.keypair, GENESIS_HASH, kind, p.height, p.round, p.block_hash)
            for peer in range(len(self.nodes)):
                if peer != node.index:
                    self.send(node.index, peer, vote)

    # -- checks -----------------------------------------------------------------------------------------
    def check_not_equivocating(self, node: _Node, msg: Message) -> None:
        signer = msg.proposer if isinstance(msg, Proposal) else msg.validator
        if signer != node.keypair.public_key:
            return                                   # relayed, not its own
        step = Step.PROPOSE if isinstance(msg, Proposal) else msg.kind
        key = (signer, msg.height, msg.round, int(step))
        earlier = self.signed.setdefault(key, msg)
        if earlier != msg:
            self.violations.append(f"t={self.now}: honest node {node.index} signed two different "
                                   f"{step.name.lower()}s at height {msg.height} round {msg.round}")

    def check_decision(self, node: _Node, d: Decide) -> None:
        if d.height in node.decided:
            if node.decided[d.height].block_hash != d.block_hash:
                self.violations.append(f"node {node.index} decided height {d.height} twice, differently")
            return
        if d.height != max(node.decided, default=0) + 1:
            self.violations.append(f"node {node.index} decided height {d.height} out of order")
        try:
            d.certificate.verify(self.validators, GENESIS_HASH)
        except InvalidCommit as e:
            self.violations.append(f"node {node.index} height {d.height}: bad certificate: {e}")
        if d.block_hash.startswith(INVALID_PREFIX):
            self.violations.append(f"node {node.index} decided an invalid block at height {d.height}")
        first = self.first_decision.setdefault(d.height, d.block_hash)
        if first != d.block_hash:
            self.violations.append(f"SAFETY: height {d.height}: node {node.index} decided {d.block_hash.hex()[:16]}, "
                                   f"another honest node decided {first.hex()[:16]}")
        node.decided[d.height] = d.certificate

    def check_evidence(self, node: _Node, a: EvidenceFound) -> None:
        ev = a.evidence
        self.evidence.append(ev)
        index = self.validators.index_of(ev.validator)
        if not ev.is_valid(self.validators, GENESIS_HASH):
            self.violations.append(f"node {node.index} produced evidence that does not verify")
        elif index is None or not self.nodes[index].byzantine:
            self.violations.append(f"node {node.index} produced evidence against honest validator {index}")

    def result(self, seed: int) -> SimResult:
        n = len(self.nodes)
        live = self.faults.expects_liveness(n)
        violations = list(self.violations)
        if live:
            down = self.faults.down_for_good()
            for node in self.nodes:
                if not node.byzantine and node.index not in down and len(node.decided) < self.heights:
                    violations.append(f"LIVENESS: node {node.index} decided {len(node.decided)} of {self.heights} "
                                      f"heights by t={self.now} ms")
        decided = {node.index: [node.decided[h].block_hash for h in sorted(node.decided)] for node in self.nodes}
        return SimResult(seed, n, self.heights, self.faults, decided, violations, self.evidence, self.now,
                         self.messages, self.max_round, live)


def run(seed: int, n_validators: int = 4, heights: int = 4, faults: Faults | str = "mixed",
        max_time_ms: int | None = None, machine_class: type[Tendermint] = Tendermint) -> SimResult:
    """Simulate one seed. `faults` is a `Faults` or a scenario name from `SCENARIOS`, drawn from the
    seed. The run ends when every validator that should decide has decided `heights` heights, or at
    `max_time_ms` of virtual time (default: a minute after the last fault heals). `machine_class`
    lets a test run the honest validators on a deliberately broken variant, to show the checks bite."""
    rng = random.Random(seed)
    if isinstance(faults, str):
        faults = random_faults(faults, rng, n_validators)
    if max_time_ms is None:
        max_time_ms = faults.last_fault_ms() + 60_000 + 2_000 * heights
    sim = _Simulation(rng.getrandbits(64), n_validators, heights, faults, max_time_ms, machine_class)
    sim.run()
    return sim.result(seed)
