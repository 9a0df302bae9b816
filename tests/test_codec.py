"""Canonical msgpack: round trips, and every kind of non-canonical or hostile input is refused."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from unittest import mock

import msgpack
import msgpack.fallback as msgpack_fallback
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primitives import codec
from primitives.codec import (BOOL, H256, MAX_NESTING_DEPTH, U8, U32, U128, CodecError, ListOf, Optional,
                              Text, pack, struct, unpack)
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


# ------------------------------------------------------------------------------------------
# msgpack's C extension and its pure-Python fallback must give every input the same verdict
# ------------------------------------------------------------------------------------------

def _implementation(name: str) -> types.SimpleNamespace:
    """The parts of msgpack the codec uses, from one implementation."""
    if name == "c":
        from msgpack import _cmsgpack as impl
        packer = impl.Packer
    else:
        impl = msgpack_fallback
        packer = msgpack_fallback.Packer
    return types.SimpleNamespace(
        unpackb=impl.unpackb, packb=lambda o, **kw: packer(**kw).pack(o),
        ExtraData=msgpack.ExtraData, UnpackException=msgpack.UnpackException)


def _codec_verdict(implementation: str, data: bytes) -> tuple:
    with mock.patch.object(codec, "msgpack", _implementation(implementation)):
        try:
            return ("ok", unpack(data))
        except CodecError:
            return ("refused",)


#: one msgpack value opened per element: a container header, its count, and how its items close
_OPENERS = st.sampled_from([b"\x91", b"\x92", b"\xdc\x00\x01", b"\xdd\x00\x00\x00\x01", b"\x81\xa1k"])
_LEAVES = st.sampled_from([b"\x00", b"\xc0", b"\xc4\x01x", b"\xa1s", b"\xca\x00\x00\x00\x00", b"\xd4\x00\x00",
                           b"\xc1", b"\xcc\x05", b"\xcf" + b"\xff" * 8, b""])


@st.composite
def nestings(draw) -> bytes:
    """Bytes of a value nested to a random depth, up to far past both implementations' limits,
    with a random leaf and sometimes a mutation (a byte dropped, added or changed)."""
    depth = draw(st.integers(0, 1500))
    opener = draw(_OPENERS)
    body = opener * depth + draw(_LEAVES)
    # a [x, y] opener needs a second item at every level: close them with nil
    if opener == b"\x92":
        body += b"\xc0" * depth
    mutation = draw(st.sampled_from(["none", "drop", "add", "flip"]))
    if mutation != "none" and body:
        i = draw(st.integers(0, len(body) - 1))
        if mutation == "drop":
            body = body[:i] + body[i + 1:]
        elif mutation == "add":
            body = body[:i] + bytes([draw(st.integers(0, 255))]) + body[i:]
        else:
            body = body[:i] + bytes([body[i] ^ draw(st.integers(1, 255))]) + body[i + 1:]
    return body


@settings(max_examples=300, deadline=None)
@given(nestings(), st.sampled_from([0, 300, 800]))
def test_c_extension_and_fallback_give_any_nesting_the_same_verdict(data, stack_frames):
    def at_depth(n: int, fn):
        return fn() if n <= 0 else at_depth(n - 1, fn)
    c = at_depth(stack_frames, lambda: _codec_verdict("c", data))
    py = at_depth(stack_frames, lambda: _codec_verdict("python", data))
    assert c == py


def test_nesting_past_the_limit_is_refused_by_both_implementations():
    for depth in (MAX_NESTING_DEPTH + 1, 999, 1000, 1024, 1025):
        data = b"\x91" * depth + b"\x00"
        assert _codec_verdict("c", data) == _codec_verdict("python", data) == ("refused",)
    data = b"\x91" * MAX_NESTING_DEPTH + b"\x00"
    assert _codec_verdict("c", data)[0] == _codec_verdict("python", data)[0] == "ok"


def test_the_msgpack_implementation_is_the_one_this_run_asked_for():
    fallback_wanted = bool(os.environ.get("MSGPACK_PUREPYTHON"))
    assert (msgpack.Unpacker is msgpack_fallback.Unpacker) == fallback_wanted


def test_codec_tests_pass_under_the_pure_python_fallback():
    """The whole of this file again, in a process where msgpack runs its pure-Python fallback
    (as on PyPy, or where the C extension did not build)."""
    env = dict(os.environ, MSGPACK_PUREPYTHON="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "not test_codec_tests_pass_under_the_pure_python_fallback"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env,
        capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
