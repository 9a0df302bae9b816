"""Names on the wire: gossip topics and request/response protocol ids, namespaced by genesis.

Every name carries a prefix of the genesis hash, so nodes of different chains (a dev chain and a
testnet on one machine, say) that happen to connect never mix their messages: they simply do not
share a topic or a protocol. The version suffix lets a message format change without a flag day.

    /gridchain/<first 8 bytes of genesis, hex>/tx/1
    /gridchain/<...>/proposal/1      /gridchain/<...>/vote/1      /gridchain/<...>/block-part/1
    /gridchain/<...>/finality/1
    /gridchain/<...>/req/<name>      e.g. name "block-sync/1"
"""
from __future__ import annotations

import re
from enum import Enum

import multiaddr
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

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
