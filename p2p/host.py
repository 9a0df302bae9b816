"""The node's libp2p host: gossip and request/response for consensus and transactions, run by
py-libp2p 0.8.1 under trio in its own thread and used from the node's asyncio loop.

    host = P2PHost(P2PConfig(base_path=base, genesis_hash=genesis, listen_addrs=["/ip4/0.0.0.0/tcp/30333"],
                             bootnodes=["/ip4/10.0.0.2/tcp/30333/p2p/12D3KooW..."]))
    host.on_message(TopicKind.VOTE, on_vote)          # handler(peer_id, data), sync or async
    host.serve("block-sync/1", serve_blocks)          # async handler(peer_id, data) -> bytes
    await host.start()                                # returns when listening and pubsub is ready
    host.publish(TopicKind.VOTE, vote_bytes)          # any thread; never blocks; False if full
    blocks = await host.request(peer, "block-sync/1", query, timeout=5)
    host.report(peer, -20, "undecodable vote")        # ban below the threshold
    await host.stop()                                 # bounded; the thread is gone afterwards

Delivery semantics: gossip is best effort (no delivery guarantee, as in any gossipsub): consensus
catches up over request/response. A handler is called in publish order per topic, on the asyncio
loop, with the *origin* peer id (the signer of the message), never for this node's own messages.

How the py-libp2p pitfalls listed in shared/notes are handled (each confirmed in its source):
1. Gossipsub spam protection (10 msg/s per topic, own publishes included, excess dropped with a
   warning) is disabled; peers are policed by our own scoring instead.
2. A subscription buffers 32 messages and drops the rest. We never read subscriptions: the entry
   for each topic in `Pubsub.subscribed_topics_send` is replaced by a sink that hands every message
   straight to the bridge, whose queues are bounded and counted (`gossip_inbound_drops`).
3. The per-peer outbound queue holds 32 RPCs and drops when full, logging only at DEBUG. Our
   publisher waits while a peer's queue is nearly full (unless that peer is stuck, see
   `Gossip._outbound_room` in topics.py), so overload shows up as `publish` returning False rather than as silent
   loss downstream; every drop that still happens is counted (`gossip_drops`) by a handler on
   that DEBUG log record, the only signal py-libp2p gives.
4. Frames over 1 MiB vanish: `publish` refuses payloads over `max_message_size` (raising
   MessageTooLarge); framing.split_payload/PartAssembler carry larger payloads as parts.
5. Services start in the order that works: router and Pubsub services, then `host.run`, then
   `wait_until_ready`, then subscriptions; py-libp2p's `bootstrap=` is not used.
6. py-libp2p forgets a bootstrap peer after 3 failed dials and blocks a peer for 60 s after a
   failed dial; each bootnode gets its own reconnect task with jittered exponential backoff, which
   lifts that block (`Swarm.unblock_peer`) before each dial. The swarm's auto-connector is stopped:
   it would redial banned peers from the peerstore.
Found while building this, and worked around here:
a. Garbage on a pubsub stream stops the whole py-libp2p host (a frame that is not protobuf, or a
   message with a forged sender and a garbage key; both measured): inbound pubsub streams pass
   through framing.SanitisingStream, which also reads the network in chunks (py-libp2p reads each
   length prefix a byte at a time, each read possibly sending a yamux window update).
b. Every inbound connection keeps its slot of the swarm's inbound cap for the swarm's whole life,
   so after `max_connections` inbound connections in total, none is accepted any more. The swarm
   cap is set out of reach; `max_peers` is enforced by PeerBook, per-peer connections stay at 2.
   Each closed inbound connection still leaves a parked task behind in py-libp2p (small: not
   measurable above noise after 50 connections).
c. A listen address that cannot be bound is only logged; `start` checks and fails instead.
d. Stopping the services leaves sockets open (their cleanup runs cancelled), so peers would think
   us connected until a keepalive fails: `stop` closes every connection first, concurrently.
e. Pubsub's seen-message cache starts a thread nobody stops; we stop it.
f. The gossipsub heartbeat defaults to 120 s (go-libp2p: 1 s); we use `heartbeat_interval` (1 s)
   so mesh repair and IHAVE gossip happen promptly.
g. We speak gossipsub v1.1 only: v1.2 makes every node send an IDONTWANT control RPC to each mesh
   peer for every message, own publishes included. Between two processes with bare py-libp2p at
   200 msg/s offered, v1.2 delivered 86-92 msg/s and v1.1 135-197 msg/s (three runs each, busy
   machine), for a bandwidth saving that only matters in large meshes.
h. py-libp2p spends much of its per-message CPU on work whose answer does not change: verifying
   the sender's signed peer record attached to every RPC, rebuilding our own record's addresses
   for every message sent or forwarded, a list-based LRU, verifying our own signature right after
   signing, and a yamux window update per read. p2p/libp2p_tuning.py (written against py-libp2p
   0.8.1, refused with a warning on any other version) removes that for our hosts only; message
   signatures (`strict_signing`) are still made and checked, and nothing accepted changes.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.request_response import (BytesCodec, MessageTooLargeError, ProtocolNotSupportedError,
                                     RequestResponse, RequestResponseConfig, RequestTimeoutError)
from libp2p.tools.anyio_service import background_trio_service

from p2p import libp2p_tuning
from p2p.bridge import Bridge, Hop, NotRunning, P2PError
from p2p.framing import LIBP2P_MAX_FRAME, MAX_GOSSIP_PAYLOAD, BadFrame, decode_response, encode_error, encode_ok
from p2p.keys import load_or_create_node_key, peer_id_of
from p2p.peers import ConnectionKeeper, Counters, PeerBook, PeerSnapshot, count_libp2p_drops
from p2p.topics import Gossip, TopicKind, parse_kind, parse_peer_addr, parse_peer_id, protocol_id, topic_name

log = logging.getLogger(__name__)

GossipHandler = Callable[[str, bytes], Awaitable[None] | None]
RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
Validator = Callable[[bytes], bool]

_UNREACHABLE_CONNECTION_CAP = 1 << 40


class MessageTooLarge(P2PError, ValueError):
    """A payload over the configured limit (gossip: ~1 MiB at most, see framing)."""


class ConnectFailed(P2PError):
    """A dial did not produce a connection (unreachable, wrong peer id, refused)."""


class RequestFailed(P2PError):
    """A request got no answer: connection failure, unknown peer, bad response frame."""


class RequestTimeout(RequestFailed):
    """No answer within the timeout."""


class ProtocolNotSupported(RequestFailed):
    """The peer does not serve this protocol (on this chain)."""


class RemoteError(RequestFailed):
    """The peer's handler failed; the message is the peer's explanation."""


@dataclass
class P2PConfig:
    """Everything the host needs; the defaults suit a validator network of a few dozen nodes."""

    base_path: Path                     # the node key lives in <base_path>/network/secret_ed25519
    genesis_hash: bytes                 # namespaces topics and protocols
    listen_addrs: Sequence[str] = ("/ip4/0.0.0.0/tcp/30333",)
    bootnodes: Sequence[str] = ()       # /ip4/1.2.3.4/tcp/30333/p2p/<peer id>, kept connected
    max_peers: int = 25                 # bootnodes do not count against it
    max_message_size: int = MAX_GOSSIP_PAYLOAD
    max_request_size: int = 1 << 20
    max_response_size: int = 16 << 20
    request_timeout: float = 10.0
    handler_timeout: float = 10.0       # how long a served request may take on this node
    ban_threshold: float = -100.0
    ban_seconds: float = 600.0
    reconnect_min: float = 0.5          # bootnode reconnect backoff, doubled per failure up to max
    reconnect_max: float = 30.0
    dial_timeout: float = 5.0
    publish_queue: int = 4096           # publishes waiting for the libp2p thread
    inbound_queue: int = 4096           # messages per topic waiting for their asyncio handler
    backpressure_timeout: float = 1.0   # a peer whose queue barely drains for this long is "stuck"
    gossip_degree: tuple[int, int, int] = (6, 4, 12)  # gossipsub D, D_low, D_high
    heartbeat_interval: int = 1
    start_timeout: float = 20.0
    stop_timeout: float = 5.0
    drop_log_interval: float = 10.0     # at most one aggregated warning about drops per interval

    def __post_init__(self) -> None:
        if len(self.genesis_hash) != 32:
            raise ValueError("genesis_hash must be 32 bytes")
        if not 0 < self.max_message_size <= MAX_GOSSIP_PAYLOAD:
            raise ValueError(f"max_message_size must be in 1..{MAX_GOSSIP_PAYLOAD} (gossipsub's 1 MiB frame "
                             "limit minus the envelope); split larger payloads into parts")
        if not self.listen_addrs:
            raise ValueError("need at least one listen address")
        for addr in self.listen_addrs:
            try:
                multiaddr.Multiaddr(addr)
            except Exception as exc:
                raise ValueError(f"bad listen address {addr!r}: {exc}") from None
        d, d_low, d_high = self.gossip_degree
        if not 0 < d_low <= d <= d_high:
            raise ValueError("gossip_degree must be (D, D_low, D_high) with 0 < D_low <= D <= D_high")
        for name in ("max_peers", "max_request_size", "max_response_size", "publish_queue", "inbound_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


class P2PHost:
    """The libp2p host of one node. Start, stop, request, connect and topic_peers belong to the
    asyncio loop that started it; publish, report, peers, connected_peers and counters_snapshot
    are safe from any thread."""

    def __init__(self, config: P2PConfig) -> None:
        self.config = config
        self._key = load_or_create_node_key(config.base_path)
        self._id = ID.from_pubkey(self._key.public_key)
        self.peer_id: str = peer_id_of(self._key)  # for system_localPeerId
        self._topics = {k: topic_name(config.genesis_hash, k) for k in TopicKind}
        self._bootnodes = [i for i in map(parse_peer_addr, config.bootnodes) if i.peer_id != self._id]
        self._listen = [multiaddr.Multiaddr(a) for a in config.listen_addrs]
        self.counters = Counters()
        self.book = PeerBook(config.max_peers, config.ban_threshold, config.ban_seconds,
                             protected=[b.peer_id.to_base58() for b in self._bootnodes])
        self._handlers: dict[TopicKind, GossipHandler] = {}
        self._validators: dict[TopicKind, Validator] = {}
        self._served: dict[str, RequestHandler] = {}
        self._queues: dict[TopicKind, asyncio.Queue[tuple[str, bytes]]] = {}
        self._consumers: list[asyncio.Task[None]] = []
        self._bridge: Bridge | None = None
        self._outbox: Hop[tuple[str, bytes]] | None = None
        self._running = self._stopped = False
        self.listen_addrs: list[str] = []  # full multiaddrs (with /p2p/<id>) once started
        self.failure: BaseException | None = None  # set if the libp2p thread died on its own
        self._warned: dict[str, float] = {}
        # trio-thread state, set up in _trio_main
        self._host: Any = None
        self._pubsub: Any = None
        self._router: Any = None
        self._rr: Any = None
        self._stop_event: trio.Event | None = None
        self._root: trio.CancelScope | None = None
        self._keeper = ConnectionKeeper(self.book, self.counters, self._spawn, config.reconnect_min,
                                        config.reconnect_max, config.dial_timeout)
        self._gossip = Gossip(self._topics, self._id, self.counters, self.book.is_banned, self._penalise,
                              self._validators, config.max_message_size, config.backpressure_timeout,
                              config.publish_queue)

    # =========================================================================================
    # public API (asyncio side)
    # =========================================================================================

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the libp2p thread; returns once it listens and pubsub is ready."""
        if self._bridge is not None:
            raise P2PError("a P2PHost starts once; make a new one to restart")
        loop = asyncio.get_running_loop()
        self._bridge = bridge = Bridge(loop, name=f"p2p-{self.peer_id[-8:]}")
        self._outbox = Hop(bridge.to_trio, self._gossip.enqueue, self.config.publish_queue)
        inbox: Hop[tuple[TopicKind, str, bytes]] = Hop(
            loop.call_soon_threadsafe, self._deliver, self.config.inbound_queue * len(TopicKind))
        self._gossip.deliver = functools.partial(_post_quietly, inbox)
        for kind in TopicKind:
            self._queues[kind] = asyncio.Queue(self.config.inbound_queue)
            self._consumers.append(loop.create_task(self._consume(kind), name=f"p2p-{kind.value}"))
        ready: asyncio.Future[list[str]] = loop.create_future()
        self._ready = ready
        bridge.start(self._trio_main)
        await asyncio.wait([ready, bridge.finished], timeout=self.config.start_timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            error = _root_cause(bridge.finished.result()) if bridge.finished.done() else None
            await self._shutdown()
            raise P2PError(f"p2p host failed to start: {error}" if error else "p2p host start timed out")
        self.listen_addrs = ready.result()
        self._running = True
        bridge.finished.add_done_callback(self._thread_ended)
        log.info("p2p host %s listening on %s", self.peer_id, ", ".join(self.listen_addrs))

    async def stop(self) -> None:
        """Stop the host; returns within about `stop_timeout` s with the libp2p thread gone."""
        if self._bridge is None or self._stopped:
            return
        self._stopped, self._running = True, False
        await self._shutdown()

    def on_message(self, kind: TopicKind | str, handler: GossipHandler, *,
                   validator: Validator | None = None) -> None:
        """Deliver gossip of `kind` to `handler(origin_peer_id, data)` on the asyncio loop.

        `validator(data) -> bool`, if given, runs in the libp2p thread before the message is
        forwarded to other peers: it must be quick, pure and thread-safe (a decode check, not a
        state lookup). A message it rejects is neither delivered nor forwarded, and costs the
        forwarding peer score.
        """
        k = parse_kind(kind)
        self._handlers[k] = handler
        if validator is not None:
            self._validators[k] = validator

    def publish(self, kind: TopicKind | str, data: bytes) -> bool:
        """Queue `data` for gossip on `kind`; False (and counted) if the publish queue is full.

        Never blocks and is safe from any thread. Raises MessageTooLarge over `max_message_size`
        and NotRunning when the host is not running.
        """
        k = parse_kind(kind)
        if len(data) > self.config.max_message_size:
            self.counters.inc("publish_refused_oversize")
            raise MessageTooLarge(f"{len(data)} bytes > max_message_size {self.config.max_message_size}; "
                                  "split it with p2p.framing.split_payload")
        if not self._running or self._outbox is None:
            raise NotRunning("p2p host is not running")
        if self._outbox.post((self._topics[k], bytes(data))):
            return True
        self.counters.inc("gossip_publish_queue_drops")
        return False

    def serve(self, name: str, handler: RequestHandler) -> None:
        """Answer requests for protocol `name` (e.g. "block-sync/1") with `await handler(peer, data)`."""
        proto = protocol_id(self.config.genesis_hash, name)
        self._served[proto] = handler
        if self._running and self._bridge is not None:
            self._bridge.to_trio(self._install_handler, proto)

    async def request(self, peer_id: str, name: str, data: bytes, timeout: float | None = None) -> bytes:
        """Ask `peer_id` over protocol `name`; the answer, or RequestFailed (or a subclass)."""
        if len(data) > self.config.max_request_size:
            raise MessageTooLarge(f"request of {len(data)} bytes > max_request_size")
        pid = parse_peer_id(peer_id)
        proto = protocol_id(self.config.genesis_hash, name)
        t = self.config.request_timeout if timeout is None else timeout
        if not self._running or self._bridge is None:
            raise NotRunning("p2p host is not running")
        self.counters.inc("requests_sent")
        try:
            frame = await asyncio.wait_for(self._bridge.call_trio(self._send_request, pid, proto, bytes(data), t),
                                           t + 2.0)
            ok, body = decode_response(frame)
        except asyncio.TimeoutError:
            self.counters.inc("requests_failed")
            raise RequestTimeout(f"no answer from {peer_id} within {t} s") from None
        except BadFrame as exc:
            self.counters.inc("requests_failed")
            raise RequestFailed(f"{peer_id} answered garbage: {exc}") from None
        except P2PError:
            self.counters.inc("requests_failed")
            raise
        if not ok:
            self.counters.inc("requests_remote_errors")
            raise RemoteError(body.decode("utf-8", "replace"))
        return body

    def report(self, peer_id: str, delta: float, reason: str) -> None:
        """Change a peer's score (negative for misbehaviour); at the threshold it is banned."""
        if self.book.report(peer_id, delta, reason):
            self.counters.inc("peers_banned")
            if self._running and self._bridge is not None:
                self._bridge.to_trio(self._keeper.enforce_ban, peer_id)

    def peers(self) -> list[PeerSnapshot]:
        """Connected peers (id, address, score, connected since): `system_peers`."""
        return self.book.snapshot()

    def connected_peers(self) -> list[str]:
        return self.book.connected()

    def counters_snapshot(self) -> dict[str, int]:
        """All counters (see peers.Counters.DROP_COUNTERS for the lossy ones), for Prometheus."""
        return self.counters.snapshot()

    async def connect(self, addr: str) -> str:
        """Dial `/ip4/../tcp/../p2p/<id>` once (no reconnects: use bootnodes for that); its peer id."""
        info = parse_peer_addr(addr)
        if self._bridge is None or not self._running:
            raise NotRunning("p2p host is not running")
        try:
            await self._bridge.call_trio(self._keeper.dial, info)
        except P2PError:
            raise
        except Exception as exc:  # py-libp2p's dial errors, trio.TooSlowError
            raise ConnectFailed(f"cannot connect to {addr}: {_root_cause(exc)!r}") from None
        return info.peer_id.to_base58()

    async def topic_peers(self, kind: TopicKind | str) -> list[str]:
        """Peers in our gossip mesh for `kind`: who a publish reaches directly right now."""
        topic = self._topics[parse_kind(kind)]
        if self._bridge is None or not self._running:
            raise NotRunning("p2p host is not running")

        async def mesh() -> list[str]:
            return sorted(p.to_base58() for p in self._router.mesh.get(topic, ()))
        return await self._bridge.call_trio(mesh)

    # =========================================================================================
    # asyncio side internals
    # =========================================================================================

    def _deliver(self, items: list[tuple[TopicKind, str, bytes]]) -> None:
        for kind, origin, data in items:
            if kind not in self._handlers:
                self.counters.inc("gossip_unhandled")
                continue
            try:
                self._queues[kind].put_nowait((origin, data))
            except asyncio.QueueFull:
                self.counters.inc("gossip_inbound_drops")

    async def _consume(self, kind: TopicKind) -> None:
        queue = self._queues[kind]
        while True:
            origin, data = await queue.get()
            handler = self._handlers.get(kind)
            if handler is None:
                self.counters.inc("gossip_unhandled")
                continue
            try:
                result = handler(origin, data)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.counters.inc("gossip_handler_errors")
                if self._warn_due(f"handler-{kind.value}"):
                    log.exception("gossip handler for %s failed (further failures counted, "
                                  "logged once per %.0f s)", kind.value, self.config.drop_log_interval)

    def _warn_due(self, key: str) -> bool:
        now = time.monotonic()
        if now - self._warned.get(key, -1e9) < self.config.drop_log_interval:
            return False
        self._warned[key] = now
        return True

    def _thread_ended(self, fut: asyncio.Future[BaseException | None]) -> None:
        if self._running:  # not a stop() of ours: the libp2p thread died
            self._running = False
            self.failure = _root_cause(fut.result()) or P2PError("libp2p thread ended")
            log.critical("p2p host %s died: %r", self.peer_id, self.failure)

    async def _shutdown(self) -> None:
        bridge = self._bridge
        assert bridge is not None
        try:
            bridge.to_trio(self._request_stop)
        except NotRunning:
            pass
        if not await bridge.join(self.config.stop_timeout):
            log.error("libp2p thread did not stop within %.1f s; abandoned as a daemon thread",
                      self.config.stop_timeout)
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers.clear()

    # =========================================================================================
    # trio side (runs in the libp2p thread)
    # =========================================================================================

    async def _trio_main(self) -> None:
        cfg = self.config
        count_libp2p_drops(self.counters)
        d, d_low, d_high = cfg.gossip_degree
        # py-libp2p holds an inbound-connection slot for the swarm's whole life, even after the
        # connection closed (Swarm._do_handle_inbound_connection ends in `wait_finished()`), so a
        # cap of N refuses every inbound connection after the N-th one ever accepted. The swarm's
        # cap is therefore set out of reach; the peer limit is ours (PeerBook, max_peers) and
        # per-peer connections stay capped at 2.
        n_conn = _UNREACHABLE_CONNECTION_CAP
        self._stop_event = trio.Event()
        try:
            with trio.CancelScope() as self._root:
                host = self._host = new_host(
                    key_pair=self._key, listen_addrs=self._listen,
                    connection_config=ConnectionConfig(
                        max_connections=n_conn, min_connections=0, low_watermark=0, high_watermark=n_conn,
                        max_connections_per_peer=2, dial_timeout=cfg.dial_timeout))
                # Per-message CPU savings inside py-libp2p 0.8.1 (item h above; each explained in
                # p2p/libp2p_tuning.py): signed peer records verified once per peer and record
                # instead of once per RPC, our own record looked up once a second and left out of
                # per-message RPCs, an O(1) validation cache, no re-verification of what we just
                # signed, fewer yamux window updates. `install` replaces names the pubsub and yamux
                # modules hold, once per process, and refuses any py-libp2p but 0.8.1; only hosts
                # adopted here (from this thread) are affected. GRIDCHAIN_LIBP2P_TUNING=0: all off.
                tuned = libp2p_tuning.enabled() and libp2p_tuning.install()
                router_cls = libp2p_tuning.LeanGossipSub if tuned else GossipSub
                router = self._router = router_cls(
                    protocols=[PROTOCOL_ID_V11], degree=d, degree_low=d_low, degree_high=d_high,
                    heartbeat_interval=cfg.heartbeat_interval, spam_protection_enabled=False,
                    adaptive_gossip_enabled=False)
                pubsub = self._pubsub = Pubsub(host, router, strict_signing=True,
                                               max_inbound_rpc_size=LIBP2P_MAX_FRAME)
                if tuned:
                    libp2p_tuning.adopt(host, pubsub)
                self._rr = RequestResponse(host)
                self._gossip.guard_streams(host, pubsub)
                self._keeper.host, self._keeper.pubsub = host, pubsub
                host.get_network().register_notifee(self._keeper)
                async with background_trio_service(router), background_trio_service(pubsub):
                    async with host.run(listen_addrs=self._listen):
                        missing = [str(a) for a in self._listen if str(a) not in host.get_network().listeners]
                        if missing:  # py-libp2p only logs this and runs on without listening
                            raise P2PError(f"cannot listen on {', '.join(missing)} (address in use?)")
                        await pubsub.wait_until_ready()
                        await host.get_network().auto_connector.stop()
                        await self._gossip.subscribe_all()
                        for proto in self._served:
                            self._install_handler(proto)
                        bridge = self._bridge
                        assert bridge is not None
                        try:
                            async with trio.open_nursery() as nursery:
                                bridge.nursery = nursery
                                nursery.start_soon(self._gossip.publisher)
                                nursery.start_soon(self._maintenance)
                                for info in self._bootnodes:
                                    nursery.start_soon(self._keeper.keep_connected, info)
                                bridge.to_asyncio(self._set_ready, [str(a) for a in host.get_addrs()])
                                await self._stop_event.wait()
                                nursery.cancel_scope.cancel()
                        finally:
                            bridge.nursery = None
                        # say goodbye: py-libp2p's own shutdown runs cancelled and leaves sockets
                        # open, so peers would keep us as connected until their keepalive fails
                        with trio.move_on_after(max(0.5, cfg.stop_timeout - 1.5)):
                            await _close_connections(host)
        finally:
            count_libp2p_drops(None)
            if self._pubsub is not None:  # py-libp2p never stops the seen-cache's sweeper thread
                self._pubsub.seen_messages.stop()

    def _set_ready(self, addrs: list[str]) -> None:
        if not self._ready.done():
            self._ready.set_result(addrs)

    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        if self._root is not None:  # bound the shutdown of py-libp2p's services
            self._root.deadline = trio.current_time() + max(0.5, self.config.stop_timeout - 1.0)

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        nursery = self._bridge.nursery if self._bridge else None
        try:
            if nursery is not None:
                nursery.start_soon(fn, *args)
        except RuntimeError:  # the nursery is closing: we are shutting down anyway
            pass

    def _penalise(self, pid: str, delta: float, reason: str) -> None:
        if self.book.report(pid, delta, reason):
            self.counters.inc("peers_banned")
            self._keeper.enforce_ban(pid)

    # -- requests ------------------------------------------------------------------------------

    def _install_handler(self, proto: str) -> None:
        cfg = self.config
        self._rr.set_handler(proto, functools.partial(self._handle_request, proto), BytesCodec(),
                             RequestResponseConfig(timeout=cfg.handler_timeout + 1.0,
                                                   max_request_size=cfg.max_request_size,
                                                   max_response_size=cfg.max_response_size + 1))

    async def _handle_request(self, proto: str, request: bytes, ctx: Any) -> bytes:
        pid = ctx.peer_id.to_base58()
        handler = self._served.get(proto)
        if handler is None or self.book.is_banned(pid):
            self.counters.inc("requests_refused")
            return encode_error("refused")
        self.counters.inc("requests_served")
        try:
            with trio.fail_after(self.config.handler_timeout):
                body = await self._bridge.call_asyncio(handler, pid, request)  # type: ignore[union-attr]
        except trio.TooSlowError:
            self.counters.inc("requests_handler_errors")
            return encode_error("handler timed out")
        except Exception as exc:
            self.counters.inc("requests_handler_errors")
            log.debug("handler for %s failed on a request from %s", proto, pid, exc_info=True)
            return encode_error(f"{type(exc).__name__}: {exc}")
        if not isinstance(body, (bytes, bytearray, memoryview)):
            self.counters.inc("requests_handler_errors")
            return encode_error("handler returned no bytes")
        if len(body) > self.config.max_response_size:
            self.counters.inc("responses_too_large")
            return encode_error(f"response of {len(body)} bytes exceeds the limit")
        return encode_ok(bytes(body))

    async def _send_request(self, peer: ID, proto: str, data: bytes, timeout: float) -> bytes:
        cfg = RequestResponseConfig(timeout=timeout, max_request_size=self.config.max_request_size,
                                    max_response_size=self.config.max_response_size + 1)
        try:
            return await self._rr.send_request(peer, [proto], data, BytesCodec(), cfg)
        except RequestTimeoutError:
            raise RequestTimeout(f"no answer from {peer} within {timeout} s") from None
        except ProtocolNotSupportedError:
            raise ProtocolNotSupported(f"{peer} does not serve {proto}") from None
        except MessageTooLargeError:
            self.counters.inc("responses_too_large")
            raise RequestFailed(f"{peer} answered more than max_response_size") from None
        except Exception as exc:
            raise RequestFailed(f"request to {peer} failed: {exc}") from None

    # -- connections ---------------------------------------------------------------------------

    async def _maintenance(self) -> None:
        """Lift expired bans; log drops, aggregated, at most once per drop_log_interval."""
        previous = self.counters.snapshot()
        last_log = -1e9
        while True:
            await trio.sleep(1.0)
            self._keeper.lift_expired_bans()
            now = time.monotonic()
            if now - last_log < self.config.drop_log_interval:
                continue
            drops = self.counters.drops_since(previous)
            if drops:
                log.warning("p2p dropped or refused since last report: %s",
                            ", ".join(f"{k}={v}" for k, v in sorted(drops.items())))
                previous, last_log = self.counters.snapshot(), now


def _post_quietly(hop: Hop[Any], item: Any) -> bool:
    try:
        return hop.post(item)
    except NotRunning:  # the asyncio loop is gone: we are going down
        return False


async def _close_connections(host: Any) -> None:
    """Close every connection, concurrently (each close sleeps 0.1 s in py-libp2p), then the host."""
    async def close(conn: Any) -> None:
        try:
            await conn.close()
        except Exception as exc:
            log.debug("closing a connection: %r", exc)

    network = host.get_network()
    async with trio.open_nursery() as nursery:
        for conns in list(network.connections.values()):
            for conn in list(conns):
                nursery.start_soon(close, conn)
    await host.close()


def _root_cause(exc: BaseException | None) -> BaseException | None:
    """The one exception inside nested single-member exception groups (trio wraps them)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
