"""BLS finality certificates for light clients, collected beside consensus.

A validator signs a block's finality message with its BLS key only after it has committed that
block (so at most one block per height can ever gather a quorum of these signatures, whatever the
round), and gossips the partial signature on the finality topic:

    msgpack([height u64, block_hash (32), validator (32, its account key), signature (96)])

Every node collects partials for recent heights; once a quorum of the height's validators signed
the block it committed, it aggregates them into a `FinalityCertificate` (one 96-byte signature and a
signer bitfield) and stores it as the block's second justification, engine `BLS1`. The aggregate is
verified before it is stored; only if that fails are the partials checked one by one, the bad ones
dropped and their senders scored down: one bad signer costs a retry, never a wrong certificate.
This work is off consensus's critical path: it runs after the commit, and a missing certificate
delays nothing.
"""
from __future__ import annotations

import logging
from typing import Callable

from consensus import finality_certificate as fc
from pallets import validators as validators_pallet
from primitives import bls
from primitives.codec import CodecError, pack, unpack
from primitives.keys import Keypair
from primitives.types import Justification

log = logging.getLogger("gridchain.finality")

ENGINE_FINALITY = b"BLS1"
#: partials are kept for heights this far behind the best block
KEEP_HEIGHTS = 16


class FinalityCollector:
    def __init__(self, chain, keypair: Keypair | None, publish: Callable[[bytes], None],
                 penalise: Callable[[str, str], None]) -> None:
        self.chain = chain
        self.genesis_hash = chain.genesis_hash
        self._sk = bls.secret_from_seed(keypair.seed) if keypair is not None else None
        self._account = keypair.public_key if keypair is not None else None
        self._publish = publish
        self._penalise = penalise
        # height -> block hash -> validator index -> signature
        self._partials: dict[int, dict[bytes, dict[int, bytes]]] = {}
        self._done: set[int] = set()
        self._senders: dict[tuple[int, bytes], str] = {}   # (height, validator) -> peer that sent it
        self.certificates_built = 0

    def _set_of(self, height: int) -> tuple | None:
        """The validators (account, BLS key) that decided `height`: the set after block height - 1."""
        parent = self.chain.blocks.hash_at(height - 1)
        if parent is None:
            return None
        try:
            return self.chain.read(validators_pallet.current, parent)
        except Exception:  # noqa: BLE001 - the parent's state was pruned: too old to certify
            return None

    def committed(self, height: int, block_hash: bytes) -> None:
        """We committed `block_hash` at `height`: sign it if we are one of its validators."""
        self._prune()
        vset = self._set_of(height)
        if vset is None:
            return
        if self._sk is not None and any(v.account == self._account for v in vset):
            sig = fc.sign_finality(self._sk, self.genesis_hash, height, block_hash)
            self._add(height, block_hash, vset, self._account, sig)
            self._publish(pack([height, block_hash, self._account, sig]))
        self._try_build(height, vset)

    def on_partial(self, peer: str, data: bytes) -> None:
        try:
            msg = unpack(data, 512)
            height, block_hash, account, sig = msg
            if type(height) is not int or any(type(x) is not bytes for x in (block_hash, account, sig)) \
                    or len(block_hash) != 32 or len(account) != 32 or len(sig) != bls.SIGNATURE_LEN:
                raise CodecError("bad finality signature message")
        except (CodecError, ValueError, TypeError):
            self._penalise(peer, "undecodable finality signature")
            return
        best = self.chain.best_number
        if height in self._done or not best - KEEP_HEIGHTS <= height <= best + 1:
            return
        vset = self._set_of(height)
        if vset is None:
            return
        index = next((i for i, v in enumerate(vset) if v.account == account), None)
        if index is None:
            self._penalise(peer, "finality signature from a non-validator")
            return
        try:
            bls.decode_signature(sig)            # a point on the curve, in the subgroup
        except bls.BlsError:
            self._penalise(peer, "malformed finality signature")
            return
        self._senders[(height, account)] = peer
        self._add(height, block_hash, vset, account, sig)
        self._try_build(height, vset)

    def _add(self, height: int, block_hash: bytes, vset: tuple, account: bytes, sig: bytes) -> None:
        index = next(i for i, v in enumerate(vset) if v.account == account)
        self._partials.setdefault(height, {}).setdefault(block_hash, {})[index] = sig

    def _try_build(self, height: int, vset: tuple) -> None:
        """Aggregate once a quorum signed the block we committed at `height`."""
        if height in self._done:
            return
        ours = self.chain.blocks.hash_at(height)
        sigs = self._partials.get(height, {}).get(ours) if ours is not None else None
        if not sigs or len(sigs) < fc.default_quorum(len(vset)):
            return
        keys = [v.bls_public_key for v in vset]
        # One pairing check for the aggregate instead of one per partial (each ~2-6 ms of the node's
        # main thread): partials are checked one by one only when the aggregate fails, and the bad
        # ones are dropped and their senders scored down.
        cert = fc.build(sigs, keys, genesis_hash=self.genesis_hash, height=height, block_hash=ours,
                        check_partials=False)
        try:
            fc.verify(cert, keys, self.genesis_hash)
        except bls.BlsError:
            message = fc.finality_message(self.genesis_hash, height, ours)
            for i, sig in list(sigs.items()):
                try:
                    ok = bls.verify(keys[i], message, sig)
                except bls.BlsError:
                    ok = False
                if not ok:
                    del sigs[i]
                    peer = self._senders.get((height, vset[i].account))
                    if peer is not None:
                        self._penalise(peer, "bad finality signature")
            self._try_build(height, vset)
            return
        batch = self.chain.db.batch()
        self.chain.blocks.add_justification(batch, ours, Justification(ENGINE_FINALITY, cert.encode()))
        self.chain.db.write(batch)
        self._done.add(height)
        self._partials.pop(height, None)
        self.certificates_built += 1

    def _prune(self) -> None:
        low = self.chain.best_number - KEEP_HEIGHTS
        for h in [h for h in self._partials if h < low]:
            del self._partials[h]
        self._done = {h for h in self._done if h >= low}
        self._senders = {k: p for k, p in self._senders.items() if k[0] >= low}
