"""Canonical msgpack: round trips, and every kind of non-canonical or hostile input is refused."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives.codec import (BOOL, H256, U8, U32, U128, CodecError, ListOf, Optional, Text, pack,
                              struct, unpack)
from primitives.extrinsic import Call, Extrinsic
from primitives.types import DigestItem, Header

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.binary(max_size=64) | st.text(max_size=32),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)


@given(plain)
def test_any_plain_value_round_trips_and_encoding_is_canonical(value):
    data = pack(value)
    assert pack(unpack(data)) == data


@given(plain, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(value, junk):
    with pytest.raises(CodecError, match="trailing"):
        unpack(pack(value) + junk)


def test_floats_are_rejected_both_ways():
    with pytest.raises(CodecError):
        pack([1.5])
    with pytest.raises(CodecError):
        unpack(msgpack.packb(1.5))


def test_non_minimal_integer_encoding_is_rejected():
    assert unpack(b"\x01") == 1
    with pytest.raises(CodecError, match="non-canonical"):
        unpack(b"\xcc\x01")  # 1 as uint8 instead of a positive fixint


def test_unsorted_map_is_rejected():
    data = b"\x82\xa1b\x01\xa1a\x02"  # {"b": 1, "a": 2}
    with pytest.raises(CodecError, match="sorted"):
        unpack(data)


def test_oversize_input_is_rejected_before_decoding():
    with pytest.raises(CodecError, match="exceeds"):
        unpack(b"\x00" * 100, max_size=10)


@struct
class Sample:
    a: U8
    b: H256
    c: ListOf(U32, max_len=4)
    d: Optional(Text(8))
    e: BOOL
    f: U128


samples = st.builds(Sample, st.integers(0, 255), st.binary(min_size=32, max_size=32),
                    st.lists(st.integers(0, 2**32 - 1), max_size=4).map(tuple),
                    st.none() | st.text(max_size=8).filter(lambda s: len(s.encode()) <= 8), st.booleans(),
                    st.integers(0, 2**128 - 1))


@given(samples)
def test_struct_round_trip(s):
    assert Sample.decode(s.encode()) == s


@pytest.mark.parametrize("bad", [
    [256, b"\0" * 32, [], None, True, b"\0" * 16],          # u8 out of range
    [1, b"\0" * 31, [], None, True, b"\0" * 16],            # hash too short
    [1, b"\0" * 32, [1, 2, 3, 4, 5], None, True, b"\0" * 16],  # list too long
    [1, b"\0" * 32, [], None, 1, b"\0" * 16],               # int where bool expected
    [1, b"\0" * 32, [], None, True],                        # missing field
    [1, "x" * 32, [], None, True, b"\0" * 16],              # str where bytes expected
])
def test_struct_rejects_wrong_types_and_ranges(bad):
    with pytest.raises(CodecError):
        Sample.decode(msgpack.packb(bad, use_bin_type=True))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_extrinsic_decoder_never_crashes_on_random_bytes(data):
    try:
        Extrinsic.decode(data)
    except CodecError:
        pass


@settings(max_examples=300)
@given(st.data())
def test_extrinsic_decoder_rejects_or_round_trips_mutations(data):
    xt = Extrinsic(Call(3, 0, (b"\1" * 32, 5))).encode()
    pos = data.draw(st.integers(0, len(xt) - 1))
    mutated = xt[:pos] + bytes([data.draw(st.integers(0, 255))]) + xt[pos + 1:]
    try:
        decoded = Extrinsic.decode(mutated)
    except CodecError:
        return
    assert decoded.encode() == mutated


def test_header_round_trip_and_hash_changes_with_content():
    h = Header(b"\1" * 32, 7, b"\2" * 32, b"\3" * 32, (DigestItem(6, b"grid", b"\4" * 32),))
    assert Header.decode(h.encode()) == h
    h2 = Header(b"\1" * 32, 8, b"\2" * 32, b"\3" * 32, h.digest)
    assert h.hash() != h2.hash()
