"""Gossip topics and protocol names, namespaced by genesis, and the libp2p-thread side of gossip.

Every name carries a prefix of the genesis hash, so nodes of different chains (a dev chain and a
testnet on one machine, say) that happen to connect never mix their messages: they simply do not
share a topic or a protocol. The version suffix lets a message format change without a flag day.

    /gridchain/<first 8 bytes of genesis, hex>/tx/1
    /gridchain/<...>/proposal/1      /gridchain/<...>/vote/1      /gridchain/<...>/block-part/1
    /gridchain/<...>/finality/1
    /gridchain/<...>/req/<name>      e.g. name "block-sync/1"

`Gossip` is what runs in the libp2p thread for those topics: it publishes with backpressure,
puts framing.SanitisingStream in front of py-libp2p's pubsub parser, runs the node's validators,
and hands received messages to the bridge. host.py explains the py-libp2p pitfalls it handles.
"""
from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from enum import Enum
from typing import Any

import multiaddr
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from p2p.framing import LIBP2P_MAX_FRAME, GarbageFrame, SanitisingStream, new_sender_check
from p2p.peers import Counters

log = logging.getLogger(__name__)

GENESIS_PREFIX_BYTES = 8
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


class TopicKind(str, Enum):
    """What a gossip topic carries. The string value is the topic's path segment."""

    TX = "tx"                  # batches of signed extrinsics
    PROPOSAL = "proposal"      # a block proposal (its header and the part-set id)
    VOTE = "vote"              # prevotes and precommits
    BLOCK_PART = "block-part"  # the parts of a proposed block (see framing.split_payload)
    FINALITY = "finality"      # validators' BLS signatures of committed blocks (node.finality)


def parse_kind(kind: TopicKind | str) -> TopicKind:
    """`kind` as a TopicKind; ValueError naming the valid ones if it is none of them."""
    try:
        return TopicKind(kind)
    except ValueError:
        raise ValueError(f"unknown topic kind {kind!r}; one of {[k.value for k in TopicKind]}") from None


def chain_prefix(genesis_hash: bytes) -> str:
    """`/gridchain/<genesis prefix>`: the namespace of one chain."""
    if len(genesis_hash) != 32:
        raise ValueError("genesis hash must be 32 bytes")
    return f"/gridchain/{genesis_hash[:GENESIS_PREFIX_BYTES].hex()}"


def topic_name(genesis_hash: bytes, kind: TopicKind | str) -> str:
    """The gossipsub topic for `kind` on the chain with this genesis."""
    return f"{chain_prefix(genesis_hash)}/{parse_kind(kind).value}/1"


def protocol_id(genesis_hash: bytes, name: str) -> str:
    """The libp2p protocol id of the request/response protocol `name` (e.g. "block-sync/1")."""
    if not _NAME.match(name):
        raise ValueError(f"bad protocol name {name!r}: lower-case segments like 'block-sync/1'")
    return f"{chain_prefix(genesis_hash)}/req/{name}"


def parse_peer_id(peer_id: str) -> ID:
    """A base58 peer id with an embedded public key (as all ed25519 ids are); ValueError if not."""
    try:
        pid = ID.from_base58(peer_id)
        if pid.extract_public_key() is None:
            raise ValueError("no embedded key")
        return pid
    except Exception:
        raise ValueError(f"not a peer id: {peer_id!r}") from None


def parse_peer_addr(addr: str) -> PeerInfo:
    """`/ip4/<ip>/tcp/<port>/p2p/<peer id>` as a PeerInfo; ValueError saying what is wrong if not."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:
        raise ValueError(f"bad peer address {addr!r} (want /ip4/<ip>/tcp/<port>/p2p/<peer id>): {exc}") from None


# ---------------------------------------------------------------------------------------------
# the libp2p-thread side of gossip
# ---------------------------------------------------------------------------------------------

#: score penalties for misbehaviour on gossip streams
PENALTY = {"garbage_frames": -25.0, "oversize_frames": -50.0, "oversize_messages": -20.0,
           "malformed_messages": -20.0, "invalid": -10.0}
_FAULT_COUNTER = {"garbage_frames": "gossip_garbage_frames", "oversize_frames": "gossip_oversize_frames",
                  "oversize_messages": "gossip_rejected_oversize", "malformed_messages": "gossip_rejected_malformed"}
_QUEUE_HIGH, _QUEUE_LOW = 24, 12  # of py-libp2p's 32-slot per-peer outbound queue
_MIN_DRAIN = 4  # RPCs per backpressure window below which a peer counts as stuck


class _Sink:
    """Stands in for a subscription's 32-slot trio channel inside Pubsub (see host.py, pitfall 2)."""

    def __init__(self, deliver: Callable[[Any], None]) -> None:
        self._deliver = deliver

    def send_nowait(self, msg: Any) -> None:
        self._deliver(msg)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        pass


class Gossip:
    """Runs in the libp2p (trio) thread: publishes with backpressure, guards inbound pubsub
    streams, validates, and hands received messages to `deliver((kind, origin, data)) -> bool`.

    `penalise(peer_id, delta, reason)` is told about misbehaving peers; `validators` (kind ->
    fn(data) -> bool) may change while running.
    """

    def __init__(self, topics: dict[TopicKind, str], self_id: ID, counters: Counters,
                 is_banned: Callable[[str], bool], penalise: Callable[[str, float, str], None],
                 validators: dict[TopicKind, Callable[[bytes], bool]], max_message_size: int,
                 backpressure_timeout: float, publish_queue: int) -> None:
        self.topics, self.self_id, self.counters = topics, self_id, counters
        self._is_banned, self._penalise, self._validators = is_banned, penalise, validators
        self.max_message_size, self.backpressure_timeout = max_message_size, backpressure_timeout
        self.deliver: Callable[[tuple[TopicKind, str, bytes]], bool] = lambda item: False
        self.pubsub: Any = None
        self._send, self._receive = trio.open_memory_channel[tuple[str, bytes]](publish_queue)
        self._slow: set[ID] = set()
        self._sender_ok = new_sender_check()
        self._names: dict[bytes, str] = {}  # peer id bytes -> base58, for message origins

    # -- setup ----------------------------------------------------------------------------------

    def guard_streams(self, host: Any, pubsub: Any) -> None:
        """Put our guard in front of Pubsub's stream handler (before the host runs)."""
        self.pubsub = pubsub
        for proto in pubsub.router.get_protocols():
            host.set_stream_handler(proto, self.pubsub_stream)

    async def subscribe_all(self) -> None:
        """Subscribe to every topic, with our sink instead of a subscription buffer."""
        for kind, topic in self.topics.items():
            await self.pubsub.subscribe(topic)
            self.pubsub.subscribed_topics_send[topic] = _Sink(functools.partial(self._on_gossip, kind))
            self.pubsub.set_topic_validator(topic, functools.partial(self._validate, kind), False)

    # -- inbound --------------------------------------------------------------------------------

    def _on_gossip(self, kind: TopicKind, msg: Any) -> None:
        if msg.from_id == self.self_id.to_bytes():
            return  # our own publish, looped back by Pubsub
        self.counters.inc("gossip_received")
        if not self.deliver((kind, self._origin(msg.from_id), msg.data)):
            self.counters.inc("gossip_inbound_drops")

    def _origin(self, from_id: bytes) -> str:
        name = self._names.get(from_id)
        if name is None:
            if len(self._names) > 4096:
                self._names.clear()
            name = self._names[from_id] = ID(from_id).to_base58()
        return name

    def _validate(self, kind: TopicKind, forwarder: ID, msg: Any) -> bool:
        validator = self._validators.get(kind)
        if validator is None or forwarder == self.self_id:
            return True
        try:
            ok = bool(validator(msg.data))
        except Exception:
            ok = False
        if not ok:
            self.counters.inc("gossip_rejected_invalid")
            self._penalise(forwarder.to_base58(), PENALTY["invalid"], f"invalid {kind.value} gossip")
        return ok

    async def pubsub_stream(self, stream: Any) -> None:
        """Pubsub's stream handler behind framing.SanitisingStream; no exception escapes."""
        pid = stream.muxed_conn.peer_id.to_base58()
        if self._is_banned(pid):
            await _reset(stream)
            return
        guarded = SanitisingStream(stream, LIBP2P_MAX_FRAME, self.max_message_size,
                                   functools.partial(self._fault, pid), self._sender_ok)
        try:
            await self.pubsub.stream_handler(guarded)
        except GarbageFrame as exc:
            self._fault(pid, "garbage_frames", 1)
            log.debug("garbage pubsub frame from %s: %s", pid, exc)
            await _reset(stream)
        except Exception as exc:
            self.counters.inc("gossip_stream_errors")
            log.warning("pubsub stream from %s failed: %r", pid, exc)
            await _reset(stream)

    def _fault(self, pid: str, what: str, n: int) -> None:
        self.counters.inc(_FAULT_COUNTER[what], n)
        self._penalise(pid, PENALTY[what] * n, what.replace("_", " "))

    # -- outbound -------------------------------------------------------------------------------

    def enqueue(self, items: list[tuple[str, bytes]]) -> None:
        """Hand publishes (topic, data) to the publisher task; what does not fit is counted."""
        for item in items:
            try:
                self._send.send_nowait(item)
            except (trio.WouldBlock, trio.ClosedResourceError):
                self.counters.inc("gossip_publish_queue_drops")

    async def publisher(self) -> None:
        """Publish queued messages one by one, each after `_outbound_room`."""
        async for topic, data in self._receive:
            await self._outbound_room()
            try:
                await self.pubsub.publish(topic, data)
                self.counters.inc("gossip_published")
            except Exception as exc:
                self.counters.inc("gossip_publish_errors")
                log.warning("publishing on %s failed: %r", topic, exc)

    async def _outbound_room(self) -> None:
        """Wait while a peer's outbound queue is nearly full (pitfall 3).

        Waiting pushes back to `publish` (its queue fills, it returns False) instead of letting
        py-libp2p drop our own messages downstream. A peer whose queue drains by fewer than
        `_MIN_DRAIN` RPCs in `backpressure_timeout` is stuck, not busy: it is marked slow and no
        longer waited for (its drops are counted) until its queue is half empty again, so one bad
        peer cannot throttle gossip to everyone.
        """
        queues = self.pubsub.peer_queues
        self._slow = {p for p in self._slow if p in queues and len(queues[p]) >= _QUEUE_LOW}
        window_start, marks = 0.0, {}
        while True:
            full = {p: len(q) for p, q in queues.items() if len(q) >= _QUEUE_HIGH and p not in self._slow}
            if not full:
                return
            now = trio.current_time()
            if not marks:
                window_start, marks = now, full
            elif now - window_start >= self.backpressure_timeout:
                stuck = [p for p, n in full.items() if marks.get(p, n + _MIN_DRAIN) - n < _MIN_DRAIN]
                if stuck:
                    self._slow.update(stuck)
                    self.counters.inc("gossip_slow_peers", len(stuck))
                    log.warning("gossip to %s is stuck; not waiting for it until it drains",
                                ", ".join(p.to_base58() for p in stuck))
                window_start, marks = now, full
            await trio.sleep(0.001)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:
        pass
