"""What the node sees of the runtime: transaction validity, and the state it reads and writes.

The node never reaches into pallets. It hands the runtime a `StateReader` for a block's parent state
and gets back validity verdicts, block execution results and storage changes to commit.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Protocol

from primitives import keys
from primitives.errors import ChainError
from primitives.meter_formats import ecdsa


class StateReader(Protocol):
    """Read access to one committed state (a block's post-state)."""

    def get(self, key: bytes) -> bytes | None: ...

    def iter_keys(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[bytes]:
        """Keys with `prefix`, ascending, strictly after `start_after`."""
        ...


class TransactionSource(enum.Enum):
    IN_BLOCK = "inBlock"
    LOCAL = "local"
    EXTERNAL = "external"


@dataclass(frozen=True)
class ValidTransaction:
    """The runtime's verdict on a transaction that may go into a block.

    `requires` and `provides` are opaque tags; a transaction is ready when every tag it requires is
    provided by the chain state or by another ready transaction. For a signed extrinsic the runtime
    provides (signer, nonce) and requires (signer, nonce - 1) when the nonce is ahead of the chain.
    """

    priority: int
    requires: tuple[bytes, ...] = ()
    provides: tuple[bytes, ...] = ()
    longevity: int = 2**64 - 1
    propagate: bool = True


def nonce_tag(account: bytes, nonce: int) -> bytes:
    """The tag a signed extrinsic provides: its signer and nonce."""
    return account + nonce.to_bytes(4, "big")


class InvalidKind(enum.Enum):
    """Why a transaction is invalid (names as in Substrate's InvalidTransaction)."""

    CALL = "Call"                      # the call cannot be decoded or is not allowed to be dispatched
    PAYMENT = "Payment"                # the signer cannot pay the fee
    FUTURE = "Future"                  # nonce far ahead (the pool may keep it waiting)
    STALE = "Stale"                    # nonce already used
    BAD_PROOF = "BadProof"             # bad signature, or signed for another chain or runtime
    ANCIENT_BIRTH_BLOCK = "AncientBirthBlock"
    EXHAUSTS_RESOURCES = "ExhaustsResources"  # larger than a block's weight or length
    BAD_MANDATORY = "BadMandatory"     # an inherent failed
    MANDATORY_VALIDATION = "MandatoryValidation"  # an inherent submitted as a transaction
    BAD_SIGNER = "BadSigner"
    CUSTOM = "Custom"


class TransactionValidityError(ChainError):
    """Base of the two verdicts that keep a transaction out of the pool and out of blocks."""

    kind: enum.Enum


class InvalidTransaction(TransactionValidityError):
    """The transaction can never be valid as it is (RPC 1010, reason in `data`)."""

    rpc_code = 1010

    def __init__(self, kind: InvalidKind, message: str) -> None:
        super().__init__(f"Invalid Transaction: {message}", data=f"{kind.value}: {message}")
        self.kind = kind
        self.reason = message


class UnknownKind(enum.Enum):
    CANNOT_LOOKUP = "CannotLookup"
    NO_UNSIGNED_VALIDATOR = "NoUnsignedValidator"
    CUSTOM = "Custom"


class UnknownTransaction(TransactionValidityError):
    """Validity cannot be decided now (RPC 1011)."""

    rpc_code = 1011

    def __init__(self, kind: UnknownKind, message: str) -> None:
        super().__init__(f"Unknown Transaction Validity: {message}", data=f"{kind.value}: {message}")
        self.kind = kind
        self.reason = message


#: Failures of the node's own environment (its storage raises an OSError, memory runs out), not of a
#: transaction: the runtime never turns them into a verdict on an extrinsic or a block, since
#: another node would not see them; they propagate to the node, which reports them.
ENVIRONMENT_FAULTS: tuple[type[BaseException], ...] = (OSError, MemoryError)


class SignatureCheck(NamedTuple):
    """One signature check, split out of validation so the node can batch it in worker processes.

    `scheme` "" (the default) is ed25519; a field meter's record carries an ECDSA check,
    "ecdsa-<curve>-<hash>" with the key as an uncompressed SEC1 point and the signature in DER
    (`primitives.meter_formats.ecdsa.verify_check`). A named tuple: it is made once per
    transaction on the admission path and pickled to the workers as it is."""

    public_key: bytes
    signature: bytes
    message: bytes
    scheme: str = ""

    def verify(self) -> bool:
        """Run the check here (the node's workers run the same function, `verify_signature_check`)."""
        return verify_signature_check(self.public_key, self.signature, self.message, self.scheme)


def verify_signature_check(public_key: bytes, signature: bytes, message: bytes, scheme: str = "") -> bool:
    """One check of a `SignatureCheck`'s fields: ed25519 for scheme "", else a field meter's ECDSA."""
    if not scheme:
        return keys.verify(public_key, signature, message)
    return ecdsa.verify_check(scheme, public_key, signature, message)


@dataclass
class StorageChanges:
    """The net effect of a block on state: key -> new value, or None for a deletion."""

    changes: dict[bytes, bytes | None] = field(default_factory=dict)
