"""The ordered set of validators for a height: who may vote, with what weight, and who proposes.

Thresholds are in voting power, so a later weighted set needs no change to the state machine. With
total power T (= n when every validator has power 1, as today):

- f, the most faulty power tolerated:           f = floor((T - 1) / 3)
- quorum ("2f + 1" in the paper):               floor(2T / 3) + 1   (equals T - f)
- skip threshold ("f + 1", line 55):            f + 1

Any two quorums intersect in at least f + 1 power, so in at least one honest validator (safety); the
honest validators alone make a quorum (liveness); f + 1 power always includes an honest validator.

Proposer rotation is round-robin over the set in its order: proposer(h, r) = validators[(h + r) mod n].
It ignores power (weighted rotation, as in CometBFT's proposer priority, is not needed while every
validator has power 1). Each height starts with a different proposer, and each failed round moves on
to the next validator, so after at most f failed rounds an honest validator proposes.

The order is the genesis (or governance) order: index i here is bit i of a BLS finality bitfield.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from primitives.codec import H256, U64, struct
from primitives.keys import PUBLIC_KEY_LEN

#: Upper bound on a set's size; keeps certificates and tallies bounded.
MAX_VALIDATORS = 1024


class InvalidValidatorSet(ValueError):
    """A validator set that cannot be used (empty, duplicate keys, zero power, ...)."""


@struct
class Validator:
    """A validator's ed25519 public key and voting power."""

    public_key: H256
    power: U64


class ValidatorSet:
    """An immutable, ordered validator set with the quorum arithmetic of the paper."""

    __slots__ = ("_index", "f", "quorum_power", "skip_power", "total_power", "validators")

    def __init__(self, validators: Sequence[Validator]) -> None:
        validators = tuple(validators)
        if not validators:
            raise InvalidValidatorSet("a validator set needs at least one validator")
        if len(validators) > MAX_VALIDATORS:
            raise InvalidValidatorSet(f"at most {MAX_VALIDATORS} validators")
        index: dict[bytes, int] = {}
        for i, v in enumerate(validators):
            if len(v.public_key) != PUBLIC_KEY_LEN:
                raise InvalidValidatorSet("a validator key is a 32-byte ed25519 public key")
            if v.power < 1:
                raise InvalidValidatorSet("every validator has a voting power of at least 1")
            if v.public_key in index:
                raise InvalidValidatorSet(f"validator {v.public_key.hex()} appears twice")
            index[v.public_key] = i
        self.validators: tuple[Validator, ...] = validators
        self._index = index
        self.total_power: int = sum(v.power for v in validators)
        #: the most faulty voting power the protocol tolerates
        self.f: int = (self.total_power - 1) // 3
        #: power needed for "2f + 1" messages
        self.quorum_power: int = 2 * self.total_power // 3 + 1
        #: power needed for "f + 1" messages (round skip, line 55)
        self.skip_power: int = self.f + 1

    @classmethod
    def from_keys(cls, public_keys: Iterable[bytes], power: int = 1) -> ValidatorSet:
        """A set of the given keys, in the given order, each with the same power."""
        return cls([Validator(bytes(pk), power) for pk in public_keys])

    def __len__(self) -> int:
        return len(self.validators)

    def __contains__(self, public_key: object) -> bool:
        return public_key in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self.validators == other.validators

    def __hash__(self) -> int:
        return hash(self.validators)

    def __repr__(self) -> str:
        return f"ValidatorSet(n={len(self)}, total_power={self.total_power})"

    @property
    def public_keys(self) -> tuple[bytes, ...]:
        return tuple(v.public_key for v in self.validators)

    def index_of(self, public_key: bytes) -> int | None:
        """Position of `public_key` in the set, or None if it is not a validator."""
        return self._index.get(public_key)

    def power_of(self, public_key: bytes) -> int:
        """Voting power of `public_key`; 0 for a key that is not in the set."""
        i = self._index.get(public_key)
        return 0 if i is None else self.validators[i].power

    def proposer(self, height: int, round: int) -> bytes:
        """The public key of proposer(height, round): round-robin by (height + round) mod n."""
        return self.validators[(height + round) % len(self.validators)].public_key

    def has_quorum(self, power: int) -> bool:
        """True if `power` is at least 2f + 1."""
        return power >= self.quorum_power
