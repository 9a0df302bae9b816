"""The node as the RPC layer sees it.

The RPC server depends on this protocol, never on node internals; `node.service.NodeService`
implements it. Block and header values are `primitives.types` structs; hashes are raw bytes; the
RPC layer does all JSON and hex conversion. Errors a client should see are raised as
`primitives.errors.ChainError` subclasses (they carry their JSON-RPC code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

from primitives.types import Header, SignedBlock


@dataclass(frozen=True)
class NodeInfo:
    name: str              # implementation name, "gridchain"
    version: str           # implementation version
    chain: str             # chain spec name, e.g. "Development"
    chain_type: str        # "Development" | "Local" | "Live"
    properties: dict       # chain spec properties: tokenSymbol, tokenDecimals, ss58Format


@dataclass(frozen=True)
class Health:
    peers: int
    is_syncing: bool
    should_have_peers: bool


@dataclass(frozen=True)
class RuntimeVersionInfo:
    spec_name: str
    impl_name: str
    spec_version: int
    impl_version: int
    transaction_version: int
    state_version: int


@dataclass(frozen=True)
class TxStatusUpdate:
    """One step in a submitted extrinsic's life, as `author_submitAndWatchExtrinsic` reports it.

    status is one of "ready", "future", "inBlock", "finalized", "dropped", "invalid", "usurped";
    block_hash is set for inBlock and finalized; reason for dropped and invalid.
    """

    status: str
    block_hash: bytes | None = None
    reason: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("finalized", "dropped", "invalid", "usurped")


class NodeApi(Protocol):
    # system
    def info(self) -> NodeInfo: ...
    def health(self) -> Health: ...
    def account_next_index(self, account: bytes) -> int: ...
    def peers(self) -> list[dict]: ...
    def local_peer_id(self) -> str: ...
    def sync_state(self) -> dict: ...

    # chain: `at`/`block_hash` None means the best block
    def get_block(self, block_hash: bytes | None) -> SignedBlock | None: ...
    def get_block_hash(self, number: int | None) -> bytes | None: ...
    def get_header(self, block_hash: bytes | None) -> Header | None: ...
    def finalized_head(self) -> bytes: ...
    def subscribe_new_heads(self) -> AsyncIterator[Header]: ...
    def subscribe_finalized_heads(self) -> AsyncIterator[Header]: ...

    # state: raise ChainError (code 4003 style: "unknown block") if `at` is not a known block
    def get_storage(self, key: bytes, at: bytes | None) -> bytes | None: ...
    def get_keys_paged(self, prefix: bytes, count: int, start_key: bytes | None,
                       at: bytes | None) -> list[bytes]: ...
    def get_read_proof(self, keys: list[bytes], at: bytes | None) -> tuple[bytes, list[bytes]]:
        """Returns (block hash the proof is at, list of RLP trie nodes)."""
        ...
    def runtime_version(self, at: bytes | None) -> RuntimeVersionInfo: ...
    def metadata(self, at: bytes | None) -> dict: ...

    # author
    async def submit_extrinsic(self, extrinsic: bytes) -> bytes:
        """Validate and add to the pool; returns the extrinsic hash. Raises ChainError (1001, 1010...)."""
        ...
    async def submit_and_watch(self, extrinsic: bytes) -> AsyncIterator[TxStatusUpdate]:
        """Like submit_extrinsic (raising before the first update if invalid); then yields status
        updates until a terminal one."""
        ...
    def pending_extrinsics(self) -> list[bytes]: ...

    # node-specific, dev chains only (unsafe): author a block now
    async def seal_block(self) -> bytes: ...

    # extra method groups (e.g. energy_*) registered by the node: name -> callable(params) -> Any
    def extra_methods(self) -> dict[str, Any]: ...
