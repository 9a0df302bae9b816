"""Peer management and accounting: who is connected since when, each peer's score, bans, the
peer limit, and the counters an operator (and later Prometheus) reads.

Both threads use `PeerBook` and `Counters`: the libp2p thread records connections and protocol
misbehaviour, the node's asyncio loop reports application-level garbage (`report`) and lists peers
for `system_peers`. So every method takes one lock, and does no I/O under it: disconnecting a peer
is the caller's job, told by the return value. `ConnectionKeeper` is the libp2p-thread side that
acts on the book: refusing connections, disconnecting banned peers, redialing bootnodes.

Scores. A peer starts at 0. `report(peer, delta, reason)` adds delta (negative for misbehaviour);
scores decay towards 0 with a half-life (default 10 minutes), so an old offence is forgiven and a
long-good peer does not bank unlimited credit (scores are capped at +max_score). At or below
`ban_threshold` the peer is banned for `ban_seconds`: disconnected, refused on reconnect, skipped
by the bootnode reconnect loop, and blacklisted in pubsub. When the ban ends its score restarts
at 0. Entries of disconnected peers are kept (bounded) so a peer cannot wash its score by
reconnecting.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio
from libp2p.abc import INotifee
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.rcmgr import Direction

log = logging.getLogger(__name__)


class Admission(Enum):
    """What to do with a freshly connected peer."""

    ACCEPT = "accept"
    REFUSE_BANNED = "banned"
    REFUSE_FULL = "full"


@dataclass(frozen=True)
class PeerSnapshot:
    """One connected peer, as `system_peers` shows it."""

    peer_id: str
    address: str           # the remote multiaddr of the connection
    score: float
    connected_since: float  # unix seconds
    inbound: bool

    def to_json(self) -> dict:
        """The JSON shape for RPC: camelCase keys, as Substrate's system_peers uses."""
        return {"peerId": self.peer_id, "address": self.address, "score": round(self.score, 2),
                "connectedSince": int(self.connected_since), "inbound": self.inbound}


class _Peer:
    __slots__ = ("score", "scored_at", "address", "connected_since", "inbound", "banned_until")

    def __init__(self, now: float) -> None:
        self.score, self.scored_at = 0.0, now
        self.address = ""
        self.connected_since: float | None = None
        self.inbound = False
        self.banned_until = 0.0


class PeerBook:
    """Scores, bans, connections and the peer limit (see the module docstring)."""

    def __init__(self, max_peers: int = 25, ban_threshold: float = -100.0, ban_seconds: float = 600.0,
                 max_score: float = 100.0, half_life: float = 600.0, protected: Iterable[str] = (),
                 clock: Callable[[], float] = time.time, max_entries: int = 10_000) -> None:
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self.max_peers, self.ban_threshold, self.ban_seconds = max_peers, ban_threshold, ban_seconds
        self.max_score, self.half_life, self.max_entries = max_score, half_life, max_entries
        self.protected = set(protected)
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}

    # -- connections --------------------------------------------------------------------------

    def on_connected(self, peer_id: str, address: str, inbound: bool) -> Admission:
        """Record a new connection; says whether to keep it. Protected peers skip the limit."""
        with self._lock:
            now = self._clock()
            p = self._entry(peer_id, now)
            if p.banned_until > now:
                return Admission.REFUSE_BANNED
            if p.connected_since is not None:
                return Admission.ACCEPT  # a second connection to a peer we already count
            if peer_id not in self.protected and self._connected_count() >= self.max_peers:
                return Admission.REFUSE_FULL
            p.connected_since, p.address, p.inbound = now, address, inbound
            return Admission.ACCEPT

    def on_disconnected(self, peer_id: str) -> None:
        """The peer's last connection closed."""
        with self._lock:
            p = self._peers.get(peer_id)
            if p is not None:
                p.connected_since = None

    def is_connected(self, peer_id: str) -> bool:
        with self._lock:
            p = self._peers.get(peer_id)
            return p is not None and p.connected_since is not None

    def connected(self) -> list[str]:
        with self._lock:
            return [pid for pid, p in self._peers.items() if p.connected_since is not None]

    def _connected_count(self) -> int:
        return sum(1 for p in self._peers.values() if p.connected_since is not None)

    # -- scores and bans ----------------------------------------------------------------------

    def report(self, peer_id: str, delta: float, reason: str) -> bool:
        """Add `delta` to the peer's score; True if this report got the peer banned just now."""
        with self._lock:
            now = self._clock()
            p = self._entry(peer_id, now)
            if p.banned_until > now:
                return False
            p.score = min(self.max_score, self._decayed(p, now) + delta)
            p.scored_at = now
            if p.score > self.ban_threshold:
                if delta < 0:
                    log.debug("peer %s scored %+g (%s), now %.1f", peer_id, delta, reason, p.score)
                return False
            p.banned_until = now + self.ban_seconds
        log.warning("banning peer %s for %.0f s: score %.1f after %s", peer_id, self.ban_seconds, p.score, reason)
        return True

    def score(self, peer_id: str) -> float:
        with self._lock:
            p = self._peers.get(peer_id)
            return 0.0 if p is None else self._decayed(p, self._clock())

    def is_banned(self, peer_id: str) -> bool:
        with self._lock:
            p = self._peers.get(peer_id)
            return p is not None and p.banned_until > self._clock()

    def ban_remaining(self, peer_id: str) -> float:
        """Seconds until the peer's ban ends (0 if not banned)."""
        with self._lock:
            p = self._peers.get(peer_id)
            return 0.0 if p is None else max(0.0, p.banned_until - self._clock())

    def expire_bans(self) -> list[str]:
        """Lift bans that have run out; returns those peers (their score restarts at 0)."""
        out = []
        with self._lock:
            now = self._clock()
            for pid, p in self._peers.items():
                if p.banned_until and p.banned_until <= now:
                    p.banned_until, p.score, p.scored_at = 0.0, 0.0, now
                    out.append(pid)
        return out

    def _decayed(self, p: _Peer, now: float) -> float:
        if self.half_life <= 0:
            return p.score
        return p.score * 0.5 ** (max(0.0, now - p.scored_at) / self.half_life)

    def _entry(self, peer_id: str, now: float) -> _Peer:
        p = self._peers.get(peer_id)
        if p is None:
            if len(self._peers) >= self.max_entries:
                self._forget_one(now)
            p = self._peers[peer_id] = _Peer(now)
        return p

    def _forget_one(self, now: float) -> None:
        """Drop the disconnected, unbanned entry whose score is closest to 0."""
        idle = [(abs(self._decayed(p, now)), pid) for pid, p in self._peers.items()
                if p.connected_since is None and p.banned_until <= now]
        if idle:
            del self._peers[min(idle)[1]]

    # -- listing ------------------------------------------------------------------------------

    def snapshot(self) -> list[PeerSnapshot]:
        """Connected peers, oldest connection first."""
        with self._lock:
            now = self._clock()
            out = [PeerSnapshot(pid, p.address, self._decayed(p, now), p.connected_since, p.inbound)
                   for pid, p in self._peers.items() if p.connected_since is not None]
        return sorted(out, key=lambda s: s.connected_since)


class Counters:
    """Monotonic event counters, safe to bump from both threads; read with `snapshot()`.

    Every drop and refusal in the p2p layer has a counter here, so nothing is lost silently;
    `drops_since(previous)` feeds the aggregated warning the host logs every few seconds.
    """

    #: counters that mean data was lost or refused; an operator should see these
    DROP_COUNTERS = (
        "gossip_drops", "gossip_control_drops", "gossip_publish_queue_drops", "gossip_inbound_drops",
        "gossip_rejected_oversize", "gossip_rejected_malformed", "gossip_rejected_invalid",
        "gossip_garbage_frames", "gossip_oversize_frames", "gossip_unhandled", "gossip_publish_errors",
        "gossip_handler_errors", "requests_refused", "responses_too_large", "connections_refused_banned",
        "connections_refused_full",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._c[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._c[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._c)

    def drops_since(self, previous: dict[str, int]) -> dict[str, int]:
        """Drop counters that grew since `previous` (a snapshot), by how much."""
        now = self.snapshot()
        return {k: now.get(k, 0) - previous.get(k, 0) for k in self.DROP_COUNTERS
                if now.get(k, 0) > previous.get(k, 0)}


# ---------------------------------------------------------------------------------------------
# the libp2p-thread side of peer management
# ---------------------------------------------------------------------------------------------

class ConnectionKeeper(INotifee):
    """Runs in the libp2p (trio) thread: admits or refuses connections, enforces bans, and keeps
    bootnodes connected with its own reconnect loop (py-libp2p gives up on a bootstrap peer after
    3 failed dials, and blocks any peer for 60 s after a failed dial: `dial` lifts that block).

    Registered as a network notifee, so it sees every connection open and close.
    """

    def __init__(self, book: PeerBook, counters: Counters, spawn: Callable[..., None],
                 reconnect_min: float, reconnect_max: float, dial_timeout: float) -> None:
        self.book, self.counters, self._spawn = book, counters, spawn
        self.reconnect_min, self.reconnect_max, self.dial_timeout = reconnect_min, reconnect_max, dial_timeout
        self.host: Any = None
        self.pubsub: Any = None
        self._disconnect_events: dict[str, trio.Event] = {}

    # -- notifee ------------------------------------------------------------------------------

    async def connected(self, network: Any, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id
        pid = peer.to_base58()
        addrs = conn.get_transport_addresses()
        inbound = getattr(conn, "direction", None) == Direction.INBOUND
        verdict = self.book.on_connected(pid, str(addrs[0]) if addrs else "", inbound)
        if verdict is not Admission.ACCEPT:
            self.counters.inc("connections_refused_banned" if verdict is Admission.REFUSE_BANNED
                              else "connections_refused_full")
            log.debug("refusing %s: %s", pid, verdict.value)
            self._spawn(self.disconnect, peer)
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id
        if not self.live(peer):
            pid = peer.to_base58()
            self.book.on_disconnected(pid)
            event = self._disconnect_events.pop(pid, None)
            if event is not None:
                event.set()
        await trio.lowlevel.checkpoint()

    async def opened_stream(self, network: Any, stream: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: Any, stream: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: Any, maddr: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: Any, maddr: Any) -> None:
        await trio.lowlevel.checkpoint()

    # -- actions ------------------------------------------------------------------------------

    def live(self, peer: ID) -> bool:
        """Whether some connection to `peer` is open."""
        return any(not c.is_closed for c in self.host.get_network().get_connections(peer))

    def enforce_ban(self, pid: str) -> None:
        """Cut a banned peer off: pubsub blacklist (lifted by `lift_expired_bans`) and disconnect."""
        peer = ID.from_base58(pid)
        if self.pubsub is not None:
            self.pubsub.add_to_blacklist(peer)
        self._spawn(self.disconnect, peer)

    def lift_expired_bans(self) -> None:
        for pid in self.book.expire_bans():
            if self.pubsub is not None:
                self.pubsub.remove_from_blacklist(ID.from_base58(pid))
            log.info("ban of peer %s ended", pid)

    async def disconnect(self, peer: ID) -> None:
        try:
            await self.host.disconnect(peer)
        except Exception as exc:
            log.debug("disconnecting %s: %r", peer, exc)

    async def dial(self, info: PeerInfo) -> None:
        self.host.get_network().unblock_peer(info.peer_id)
        with trio.fail_after(self.dial_timeout):
            await self.host.connect(info)

    async def keep_connected(self, info: PeerInfo) -> None:
        """Keep a bootnode connected: redial with jittered exponential backoff, forever."""
        pid = info.peer_id.to_base58()
        backoff, failures = self.reconnect_min, 0
        while True:
            if self.live(info.peer_id):
                event = self._disconnect_events.setdefault(pid, trio.Event())
                await event.wait()
                backoff = self.reconnect_min
                continue
            ban = self.book.ban_remaining(pid)
            if ban > 0:
                await trio.sleep(ban)
                continue
            self.counters.inc("reconnect_attempts")
            try:
                await self.dial(info)
            except Exception as exc:
                failures += 1
                self.counters.inc("reconnect_failures")
                level = logging.WARNING if failures % 10 == 0 else logging.INFO if failures == 1 else logging.DEBUG
                log.log(level, "bootnode %s unreachable (%d attempts): %r", pid, failures, exc)
                await trio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.reconnect_max)
                continue
            if not self.live(info.peer_id):  # an old connection still closing: try again shortly
                await trio.sleep(self.reconnect_min)
                continue
            if failures:
                self.counters.inc("reconnects")
                log.info("reconnected to bootnode %s after %d failed attempts", pid, failures)
            failures, backoff = 0, self.reconnect_min


# py-libp2p reports outbound queue drops only as a DEBUG record of this logger: count them there
_DROP_LOGGER = "libp2p.pubsub.rpc_queue"
_COUNTERS_BY_THREAD: dict[int, Counters] = {}


class _DropRecordCounter(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        counters = _COUNTERS_BY_THREAD.get(record.thread or 0)
        if counters is None or not str(record.msg).startswith("Dropping outbound RPC"):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        publish = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
        if publish:
            counters.inc("gossip_drops", publish)
        else:
            counters.inc("gossip_control_drops")


def count_libp2p_drops(counters: Counters | None) -> None:
    """Count py-libp2p's outbound drops from the calling thread into `counters` (None: stop).

    py-libp2p (0.8.1) logs a dropped outbound RPC at DEBUG and nowhere else. We enable that one
    logger at DEBUG, stop it propagating (our aggregated WARNING replaces it), and attribute each
    record to the host whose libp2p thread emitted it.
    """
    lg = logging.getLogger(_DROP_LOGGER)
    if not any(isinstance(h, _DropRecordCounter) for h in lg.handlers):
        lg.addHandler(_DropRecordCounter())
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
    if counters is None:
        _COUNTERS_BY_THREAD.pop(threading.get_ident(), None)
    else:
        _COUNTERS_BY_THREAD[threading.get_ident()] = counters
