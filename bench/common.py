"""Shared set-up for benchmarks: many funded accounts, signed transfers, raw verify rate."""
from __future__ import annotations

import time

import nacl.bindings

from genesis.chain_spec import dev_spec
from primitives.extrinsic import Call, sign_extrinsic
from primitives.hashing import keccak256
from primitives.keys import Keypair, signing_message
from pallets import balances

FUNDS = 10**12  # 1,000 GRID: 100,000 of them stay well inside u64 total issuance


def accounts(n: int) -> list[Keypair]:
    """Deterministic key pairs (seed = keccak256("bench" || i))."""
    return [Keypair.from_seed(keccak256(b"bench" + i.to_bytes(4, "big"))) for i in range(n)]


def spec_with_accounts(keys: list[Keypair]) -> dict:
    """The dev chain spec with `keys` funded as well."""
    spec = dev_spec()
    cfg = spec["genesis"]["runtimeGenesis"]["config"]
    cfg["balances"]["balances"] += [[k.address(), FUNDS] for k in keys]
    spec["id"] = "bench"
    return spec


def transfers(keys: list[Keypair], per_account: int, genesis_hash: bytes, start_nonce: int = 0) -> list[bytes]:
    """`per_account` transfers from every key (nonces in order), each to the next key."""
    out = []
    call_index = (balances.pallet.index, balances.transfer.call_def.index)
    for nonce in range(start_nonce, start_nonce + per_account):
        for i, k in enumerate(keys):
            dest = keys[(i + 1) % len(keys)].public_key
            xt = sign_extrinsic(k, Call(*call_index, (dest, 1)), nonce=nonce, genesis_hash=genesis_hash,
                                spec_version=1, transaction_version=1)
            out.append(xt.encode())
    return out


def raw_verify_rate(n: int = 20_000) -> float:
    """Single-process PyNaCl ed25519 verifies per second: the physical limit we compare against."""
    kp = Keypair.from_seed(b"\1" * 32)
    msg = signing_message(b"bench", b"\0" * 32, b"x" * 120)
    sm = kp.sign(msg) + msg
    t = time.perf_counter()
    for _ in range(n):
        nacl.bindings.crypto_sign_open(sm, kp.public_key)
    return n / (time.perf_counter() - t)
