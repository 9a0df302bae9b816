"""Byte-level mutations of valid records, for the parsers' and the pallet's fuzz tests."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from hypothesis import strategies as st


def mutate(draw: Callable[[Any], Any], data: bytes, *, rounds: tuple[int, int] = (1, 4),
           tokens: Sequence[bytes] = ()) -> bytes:
    """`data` changed one to a few times: a byte flipped, bytes inserted, deleted or appended, the
    tail cut off, or (with `tokens`, bytes that mean something to the format) 0-2 bytes replaced
    by a token. `draw` is a hypothesis draw function (`st.composite`'s or `st.data().draw`)."""
    out = bytearray(data)
    ops = ["flip", "insert", "delete", "truncate", "extend"] + (["token"] if tokens else [])
    for _ in range(draw(st.integers(*rounds))):
        op = draw(st.sampled_from(ops))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[at:at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del out[at:]
        elif op == "extend":
            out += draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            out[at:at + draw(st.integers(0, 2))] = draw(st.sampled_from(list(tokens)))
    return bytes(out)
