"""Less CPU per gossip message inside py-libp2p 0.8.1, for the hosts P2PHost runs.

Profiling a receiving node's libp2p thread (py-spy, 250 B gossip at 400 msg/s between two
processes) found ~1 ms of CPU per message, a good part of it in work that gives the same answer for
every message. py-libp2p 0.8.1 has no setting for any of it, so this module changes the following,
each scoped to the hosts `adopt`ed by P2PHost: any other py-libp2p host in the process (such as the
"bare py-libp2p" comparison in bench/p2p_bench.py) runs the library's code unchanged. What each
step costs on this machine, before -> after (micro-benchmarks): 1. 68 -> 1 us per received RPC with
a record, 2. 48 -> 0.2 us per message published or forwarded, 4. 9 -> 0.4 us per message, 5. 63 ->
3 us per own publish; 3. and 6. save bytes and frames on the wire (measured end to end only).

1. Signed peer records are verified once per peer and record, not once per RPC. py-libp2p attaches
   the sender's signed peer record (an ed25519-signed envelope) to pubsub RPCs, and the receiver
   parses and verifies it and rewrites the peer's addresses in the peerstore for each one
   (`libp2p.pubsub.utils.maybe_consume_signed_record`, called by `Pubsub.continuously_read_stream`
   and again by `GossipSub.handle_rpc` for RPCs with control messages). Its answer depends only on
   the envelope bytes, the peer the RPC came from, and whether the peerstore still holds that
   record, so the wrapper remembers a success for (peer id, envelope bytes) and repeats it while
   the peerstore still holds the very envelope that success stored, for at most
   `RECORD_RECHECK_SECONDS` (so the addresses' 2-hour TTL keeps being refreshed). Anything else
   (other bytes, another peer, a newer record stored meanwhile, an expired entry) takes the
   library's own path, so a forged or altered record is rejected exactly as before; failures are
   never cached. The pubsub modules imported the function by name (`from libp2p.pubsub.utils import
   maybe_consume_signed_record`), so the names in `libp2p.pubsub.pubsub` and
   `libp2p.pubsub.gossipsub` are what is replaced.
2. Our own record is looked up once a second, not once per message. `env_to_send_in_RPC(host)`,
   called by `GossipSub.publish` for every message it publishes or forwards (forwarded to nobody
   included), rebuilds the host's addresses from the listening sockets to see whether the cached
   record is still current. The wrapper reuses its answer for `LOCAL_RECORD_TTL` seconds: a change
   of listen addresses still yields a new record, within that time.
3. `LeanGossipSub.send_rpc` leaves our record out of RPCs sent through the per-peer queues
   (published and forwarded messages, control messages). Peers still get it in the hello RPC of
   every pubsub stream and from identify (go-libp2p sends it in neither per-message RPCs); per RPC
   it made each message ~215 bytes longer (Noise, yamux and socket work on both sides) and cost the
   receiver a verification (1.).
4. `FastValidationCache` replaces `Pubsub.validation_cache`, whose LRU is a list (`remove` and
   `pop(0)` scan its 1,000 entries for every message): same behaviour, O(1).
5. Our own publishes are not verified right after we signed them. With `strict_signing`,
   `Pubsub.publish` signs a message and hands it to `push_msg`, which verifies that signature like
   any received one (`signature_validator`, imported by name into `libp2p.pubsub.pubsub`). The key
   Pubsub signs with is wrapped to remember, per thread, the last signature it made and the bytes
   it signed; the validator accepts a message without the ed25519 check only if it carries that
   signature, names the key's own peer id as its sender, and rebuilding its signed bytes (as the
   library does) gives exactly those bytes; once.
   Everything else, received messages included, is verified by the library as before.
6. Yamux sends fewer window updates. py-libp2p 0.8.1 by default returns receive-window credit on
   every read even when the sender already holds a full window (`PY_YAMUX_RELEASE_ON_READ`, on by
   default, a documented tuning variable): one WINDOW_UPDATE frame (Noise-encrypted, written, then
   read and decrypted by the peer) for each gossip message. In the libp2p threads of our hosts it is
   off unless that variable is set: credit still comes back as soon as the sender's credit plus
   unread bytes falls below the window (more eagerly than go-yamux, which waits for half a window).

Message signatures are still made and checked (`strict_signing`): nothing here changes what is
accepted. `GRIDCHAIN_LIBP2P_TUNING=0` in the environment turns all of it off (for A/B benchmarks).
`install` refuses, with a warning, any py-libp2p other than 0.8.1, or one whose replaced functions
are not the library's own; the node then runs unchanged, only slower.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from libp2p.peer import peerstore as _peerstore_mod
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as _gossipsub_mod
from libp2p.pubsub import pubsub as _pubsub_mod
from libp2p.pubsub import utils as _utils_mod
from libp2p.pubsub import validators as _validators_mod
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.stream_muxer.yamux import yamux as _yamux_mod

log = logging.getLogger(__name__)

TARGET_LIBP2P_VERSION = "0.8.1"
RECORD_RECHECK_SECONDS = 60.0   # redo the library's full check (and peerstore refresh) this often
RECORD_CACHE_SIZE = 1024        # (peer, envelope) pairs remembered per host
LOCAL_RECORD_TTL = 1.0          # s our own signed peer record is reused before rechecking addresses
_STATE_ATTR = "_gridchain_tuning"
_SIGNING_PREFIX = _validators_mod.PUBSUB_SIGNING_PREFIX.encode()

_lock = threading.Lock()
_installed: bool | None = None  # None: not tried yet
_original_consume: Callable[..., bool] | None = None
_original_env: Callable[[Any], tuple[bytes, bool]] | None = None
_original_signature_validator: Callable[[rpc_pb2.Message], bool] | None = None
_original_release_on_read: Callable[[], bool] | None = None
_thread = threading.local()  # .ours: a libp2p thread of an adopted host; .last_signed: see 5.


def enabled() -> bool:
    """False when GRIDCHAIN_LIBP2P_TUNING=0 (or false/no/off): run py-libp2p's own code paths."""
    return os.environ.get("GRIDCHAIN_LIBP2P_TUNING", "1").strip().lower() not in ("0", "false", "no", "off")


class _HostState:
    """Per-host caches; only the host's own trio thread touches them."""

    __slots__ = ("local_record", "local_record_at", "records")

    def __init__(self) -> None:
        self.records: OrderedDict[tuple[Any, bytes], tuple[Any, float]] = OrderedDict()
        self.local_record: tuple[bytes, bool] | None = None
        self.local_record_at = 0.0


def install() -> bool:
    """Replace the library names described in the module docstring, once per process.

    True if the replacements are in place (now or already), False if they were refused.
    """
    global _installed, _original_consume, _original_env, _original_signature_validator, _original_release_on_read
    with _lock:
        if _installed is not None:
            return _installed
        _installed = False
        try:
            version = importlib.metadata.version("libp2p")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        if version != TARGET_LIBP2P_VERSION:
            log.warning("py-libp2p %s is not %s: running without gridchain's per-message CPU savings "
                        "(p2p/libp2p_tuning.py)", version, TARGET_LIBP2P_VERSION)
            return False
        consume = _utils_mod.maybe_consume_signed_record
        env = _peerstore_mod.env_to_send_in_RPC
        validator = _validators_mod.signature_validator
        release = getattr(_yamux_mod, "_yamux_release_on_read", None)
        if not (_pubsub_mod.maybe_consume_signed_record is consume
                and _gossipsub_mod.maybe_consume_signed_record is consume
                and _pubsub_mod.env_to_send_in_RPC is env
                and _gossipsub_mod.env_to_send_in_RPC is env
                and _pubsub_mod.signature_validator is validator
                and callable(release)):
            log.warning("py-libp2p's pubsub or yamux names are not the expected ones (patched "
                        "elsewhere?): running without gridchain's per-message CPU savings")
            return False
        _original_consume, _original_env = consume, env
        _original_signature_validator, _original_release_on_read = validator, release
        _pubsub_mod.maybe_consume_signed_record = cached_consume_signed_record
        _gossipsub_mod.maybe_consume_signed_record = cached_consume_signed_record
        _pubsub_mod.env_to_send_in_RPC = cached_env_to_send_in_rpc
        _gossipsub_mod.env_to_send_in_RPC = cached_env_to_send_in_rpc
        _pubsub_mod.signature_validator = own_aware_signature_validator
        _yamux_mod._yamux_release_on_read = release_on_read
        _installed = True
        return True


def adopt(host: Any, pubsub: Any = None) -> bool:
    """Apply the savings to this host and its Pubsub, from the host's own libp2p (trio) thread,
    before its services run. True if applied; False if tuning is off or refused (the host then
    runs py-libp2p unchanged)."""
    if not enabled() or not install():
        return False
    if not isinstance(getattr(host.get_peerstore(), "peer_record_map", None), dict):
        log.warning("py-libp2p's peerstore has no peer_record_map: running without gridchain's "
                    "per-message CPU savings")
        return False
    setattr(host, _STATE_ATTR, _HostState())
    _thread.ours = True
    if pubsub is not None:
        if type(getattr(pubsub, "validation_cache", None)) is _pubsub_mod.ValidationCache:
            old = pubsub.validation_cache
            pubsub.validation_cache = FastValidationCache(old.ttl, old.max_size)
        if getattr(pubsub, "sign_key", None) is not None:
            pubsub.sign_key = RememberingKey(pubsub.sign_key)
    return True


# ---------------------------------------------------------------------------------------------
# 1. signed peer records of others
# ---------------------------------------------------------------------------------------------

def cached_consume_signed_record(msg: rpc_pb2.RPC, host: Any, peer_id: Any) -> bool:
    """`maybe_consume_signed_record` with the success of a (peer, envelope) remembered (see 1.)."""
    assert _original_consume is not None
    state: _HostState | None = getattr(host, _STATE_ATTR, None)
    if state is None or not msg.HasField("senderRecord"):
        return _original_consume(msg, host, peer_id)
    key = (peer_id, msg.senderRecord)
    stored_records = host.get_peerstore().peer_record_map
    now = time.monotonic()
    hit = state.records.get(key)
    if hit is not None:
        stored = stored_records.get(peer_id)
        if stored is not None and stored.envelope is hit[0] and now - hit[1] < RECORD_RECHECK_SECONDS:
            return True
        del state.records[key]
    ok = _original_consume(msg, host, peer_id)
    if ok:
        stored = stored_records.get(peer_id)
        if stored is not None:  # what the library just stored for this peer
            state.records[key] = (stored.envelope, now)
            if len(state.records) > RECORD_CACHE_SIZE:
                state.records.popitem(last=False)
    return ok


# ---------------------------------------------------------------------------------------------
# 2. and 3. our own signed peer record
# ---------------------------------------------------------------------------------------------

def cached_env_to_send_in_rpc(host: Any) -> tuple[bytes, bool]:
    """`env_to_send_in_RPC` with its answer reused for LOCAL_RECORD_TTL seconds (see 2.)."""
    assert _original_env is not None
    state: _HostState | None = getattr(host, _STATE_ATTR, None)
    if state is None:
        return _original_env(host)
    now = time.monotonic()
    if state.local_record is None or now - state.local_record_at >= LOCAL_RECORD_TTL:
        state.local_record = _original_env(host)
        state.local_record_at = now
        return state.local_record
    return state.local_record[0], False


class LeanGossipSub(GossipSub):
    """GossipSub whose queued RPCs carry no signed peer record (see 3.); otherwise unchanged."""

    def send_rpc(self, peer_id: Any, rpc: rpc_pb2.RPC, priority: bool = False) -> None:
        # the RPC is built for this send (GossipSub.publish, emit_control_message, ...) and the
        # library's send_rpc copies it per peer: clearing the field here drops it for every peer
        if rpc.HasField("senderRecord"):
            rpc.ClearField("senderRecord")
        super().send_rpc(peer_id, rpc, priority)


# ---------------------------------------------------------------------------------------------
# 4. the validation cache
# ---------------------------------------------------------------------------------------------

class FastValidationCache:
    """`libp2p.pubsub.pubsub.ValidationCache` (same methods, same behaviour) with an O(1) LRU."""

    def __init__(self, ttl: int = 300, max_size: int = 1000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.cache: OrderedDict[bytes, Any] = OrderedDict()  # oldest access first

    def get(self, msg_id: bytes) -> Any:
        result = self.cache.get(msg_id)
        if result is None:
            return None
        if time.time() - result.timestamp > self.ttl:
            del self.cache[msg_id]
            return None
        self.cache.move_to_end(msg_id)
        return result

    def put(self, msg_id: bytes, result: Any) -> None:
        # as the library: make room first (even when msg_id is already in), then insert as newest
        while self.cache and len(self.cache) >= self.max_size:
            self.cache.popitem(last=False)
        self.cache[msg_id] = result
        self.cache.move_to_end(msg_id)

    def _remove(self, msg_id: bytes) -> None:
        self.cache.pop(msg_id, None)

    def clear_expired(self) -> None:
        now = time.time()
        for msg_id in [k for k, r in self.cache.items() if now - r.timestamp > self.ttl]:
            del self.cache[msg_id]


# ---------------------------------------------------------------------------------------------
# 5. our own signatures
# ---------------------------------------------------------------------------------------------

class RememberingKey:
    """Pubsub's signing key, remembering (in this thread) the last signature it made, the bytes it
    signed and the peer id of the key."""

    def __init__(self, key: Any) -> None:
        self._key = key
        self._peer_id = ID.from_pubkey(key.get_public_key()).to_bytes()

    def sign(self, data: bytes) -> bytes:
        signature = self._key.sign(data)
        _thread.last_signed = (signature, bytes(data), self._peer_id)
        return signature

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)


def own_aware_signature_validator(msg: rpc_pb2.Message) -> bool:
    """`signature_validator`, except for the message this thread has just signed (see 5.)."""
    assert _original_signature_validator is not None
    last = getattr(_thread, "last_signed", None)
    if last is not None and msg.signature == last[0]:
        _thread.last_signed = None  # good for one check only
        if msg.from_id == last[2]:  # sent as the key's own peer id (whose embedded key it is)
            unsigned = rpc_pb2.Message(data=msg.data, topicIDs=msg.topicIDs, from_id=msg.from_id, seqno=msg.seqno)
            if _SIGNING_PREFIX + unsigned.SerializeToString() == last[1]:
                return True  # that key's signature over exactly these bytes: the check cannot fail
    return _original_signature_validator(msg)


# ---------------------------------------------------------------------------------------------
# 6. yamux window updates
# ---------------------------------------------------------------------------------------------

def release_on_read() -> bool:
    """yamux's `_yamux_release_on_read`: off in our hosts' threads unless the variable is set (6.)."""
    assert _original_release_on_read is not None
    if getattr(_thread, "ours", False) and "PY_YAMUX_RELEASE_ON_READ" not in os.environ:
        return False
    return _original_release_on_read()
