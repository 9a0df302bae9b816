"""Storage faults: a node on a damaged LevelDB stops with one line that names the database and the
remedy, never a traceback, and never builds on or serves damaged data.

The database is made by a real dev node, then flushed into a table file by opening and closing it. A
small reader of LevelDB's table format (footer, index block, snappy) finds the exact data blocks, so
each test damages a block it can name: garbage over a table file, a whole block zeroed in the middle
of one (which, without checksums, LevelDB reads as an empty block: its keys silently vanish), a
block of old headers zeroed under a running node, and a block of reference counts under a block
being committed.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import plyvel
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode, NodeRpcError, free_port, run_gridchain

from node.blockstore import BlockStore
from node.chain import Chain
from node.db import COL_FLAT, COL_HEADERS, COL_META, COL_REFCOUNT, STORAGE_ERROR_LIMIT, Database, StorageError
from primitives.keys import dev_keypair

pytestmark = pytest.mark.slow

BLOCKS = 600            # enough that old headers fill several 16 KiB table blocks of their own


# --- a reader of LevelDB table files (just enough to find data blocks and their keys) ---------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _unsnappy(buf: bytes) -> bytes:
    """Snappy's raw format: a length, then literals and back-references."""
    n, i = _varint(buf, 0)
    out = bytearray()
    while i < len(buf):
        tag = buf[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                size = int.from_bytes(buf[i:i + extra], "little")
                i += extra
            size += 1
            out += buf[i:i + size]
            i += size
            continue
        if kind == 1:
            size, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | buf[i]
            i += 1
        elif kind == 2:
            size, offset = (tag >> 2) + 1, int.from_bytes(buf[i:i + 2], "little")
            i += 2
        else:
            size, offset = (tag >> 2) + 1, int.from_bytes(buf[i:i + 4], "little")
            i += 4
        for _ in range(size):
            out.append(out[-offset])
    assert len(out) == n
    return bytes(out)


def _block(data: bytes, offset: int, size: int) -> bytes:
    kind = data[offset + size]
    raw = data[offset:offset + size]
    return _unsnappy(raw) if kind == 1 else raw


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    out, key, i = [], b"", 0
    while i < end:
        shared, i = _varint(block, i)
        unshared, i = _varint(block, i)
        vlen, i = _varint(block, i)
        key = key[:shared] + block[i:i + unshared]
        i += unshared
        out.append((key, block[i:i + vlen]))
        i += vlen
    return out


@dataclass
class DataBlock:
    offset: int
    size: int            # with the 5-byte trailer (compression type, checksum)
    keys: list[bytes]    # user keys (internal keys without their 8-byte sequence and type)


def data_blocks(path: Path) -> list[DataBlock]:
    """Every data block of a table file, in file order."""
    data = path.read_bytes()
    footer = data[-48:]
    assert footer[-8:] == struct.pack("<Q", 0xDB4775248B80FB57), f"{path} is not a LevelDB table"
    _, i = _varint(footer, 0)
    _, i = _varint(footer, i)
    index_off, i = _varint(footer, i)
    index_size, _ = _varint(footer, i)
    blocks = []
    for _, handle in _entries(_block(data, index_off, index_size)):
        off, j = _varint(handle, 0)
        size, _ = _varint(handle, j)
        keys = [k[:-8] for k, _ in _entries(_block(data, off, size))]
        blocks.append(DataBlock(off, size + 5, keys))
    return blocks


def zero(path: Path, offset: int, size: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(bytes(size))
        f.flush()
        os.fsync(f.fileno())


# --- the database under test ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def made_by_a_node(tmp_path_factory) -> Path:
    """A dev chain of BLOCKS blocks made by a real node, flushed into table files; its base path."""
    base = tmp_path_factory.mktemp("faults") / "node"
    with DevNode(base, block_time_ms=10) as node:
        node.wait_for_block(BLOCKS, timeout=120)
    Database(base / "chains" / "dev").close()   # replays the log into a table file
    assert tables(base), "the database has table files"
    return base


def tables(base: Path) -> list[Path]:
    """The database's table files, largest first."""
    files = list((base / "chains" / "dev" / "db").glob("*.ldb"))
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


@pytest.fixture()
def base(made_by_a_node: Path, tmp_path: Path) -> Path:
    """A copy of the node's base path for one test to damage."""
    copy = tmp_path / "node"
    shutil.copytree(made_by_a_node, copy)
    return copy


def db_path(base: Path) -> str:
    return str(base / "chains" / "dev" / "db")


def assert_the_one_line(line: str, base: Path) -> None:
    assert line.startswith(f"Error: the database at {db_path(base)} is damaged"), line
    assert "restore it from a backup" in line and f"gridchain purge-chain --base-path {base}" in line, line


def start_fails_with_one_line(base: Path) -> str:
    r = run_gridchain("--dev", "--base-path", str(base), "--rpc-port", str(free_port()), "--block-time-ms", "100",
                      timeout=120)
    assert r.returncode != 0, f"the node ran on a damaged database:\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    assert_the_one_line(lines[0], base)
    return lines[0]


# --- tests ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["whole file", "middle third"])
def test_garbage_over_a_table_file_stops_the_node_with_one_line(base, where):
    table = tables(base)[0]
    size = table.stat().st_size
    start, length = (0, size) if where == "whole file" else (size // 3, size // 3)
    with open(table, "r+b") as f:
        f.seek(start)
        f.write(random.Random(7).randbytes(length))
    start_fails_with_one_line(base)


def test_a_zeroed_block_in_the_middle_of_a_table_file_stops_the_node_at_start(base):
    table = tables(base)[0]
    middle = table.stat().st_size // 2
    block = next(b for b in data_blocks(table) if b.offset <= middle < b.offset + b.size)
    columns = {k[:2] for k in block.keys}
    assert columns & {b"p/", b"r/", b"s/", b"t/"}, f"the middle block holds head state ({columns})"
    raw = plyvel.DB(db_path(base))
    before = sum(1 for _ in raw.iterator(include_value=False))
    raw.close()
    zero(table, block.offset, block.size)

    # What LevelDB does without checksums: it opens, and the zeroed block reads as an empty one.
    raw = plyvel.DB(db_path(base))
    after = sum(1 for _ in raw.iterator(include_value=False))
    raw.close()
    assert after < before, "the keys of the zeroed block vanished without an error"
    line = start_fails_with_one_line(base)
    assert "checksum" in line, line


def test_storage_errors_at_run_time_are_counted_then_stop_the_node(base, tmp_path):
    """Old headers are read only when asked for: damage them under a running node that writes no
    blocks (so nothing resets the count); each read is an RPC error and a counted storage error, and
    the STORAGE_ERROR_LIMIT-th stops the node with the one line."""
    with Database(base / "chains" / "dev") as db:
        blocks = BlockStore(db)
        kept = {COL_HEADERS + h for h in (blocks.genesis_hash(), blocks.best_hash())}
    table = tables(base)[0]
    victim = next(b for b in data_blocks(table)
                  if len(b.keys) > 1 and all(k.startswith(COL_HEADERS) and len(k) == 34 for k in b.keys)
                  and not kept & set(b.keys))
    hashes = ["0x" + k[2:].hex() for k in victim.keys]
    metrics_port = free_port()
    node = DevNode(base, command=("run", "--chain", "dev"), extra_args=("--prometheus-port", str(metrics_port)))
    node.start()
    try:
        zero(table, victim.offset, victim.size)   # a block the node has not read (so not cached) yet
        for i in range(STORAGE_ERROR_LIMIT):
            with pytest.raises(NodeRpcError) as err:
                node.rpc("chain_getHeader", [hashes[1 + i % (len(hashes) - 1)]])
            assert err.value.code == -32603 and str(base) not in err.value.message, err.value.error
            if i == 0:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
                assert re.search(rb"^gridchain_storage_errors_total 1\.0$", metrics, re.M), metrics[-2000:]
                assert re.search(rb"^gridchain_rpc_refused_connections 0\.0$", metrics, re.M), metrics[-2000:]
        code = node.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the node kept running after {STORAGE_ERROR_LIMIT} storage errors\n{node.log_tail()}")
    finally:
        node.stop()
    log = node.log_text()
    assert code != 0 and "Traceback" not in log, node.log_tail()
    assert_the_one_line(log.strip().splitlines()[-1], base)
    assert len(re.findall("purge-chain", log)) == 1, "the remedy is said once, in the last line"


def test_a_failed_read_while_committing_a_block_writes_nothing(base):
    """The reference counts are read while a block's batch is being filled (pruning mode): with
    their blocks damaged, authoring fails, and neither the disk nor the node's head moves."""
    chain_dir = base / "chains" / "dev"
    for table in tables(base):
        for b in data_blocks(table):
            if all(k.startswith(COL_REFCOUNT) for k in b.keys):
                zero(table, b.offset, b.size)
    db = Database(chain_dir)
    try:
        chain = Chain(db, lambda rt: {}, keep_states=256, check_genesis=False)
        best, root = chain.best_hash, chain.state.head_root()
        meta = dict(db.iter_column(COL_META))
        flat = dict(db.iter_column(COL_FLAT))
        with pytest.raises(StorageError) as err:
            chain.build_block(dev_keypair("Alice"), [], finalize=True)
        assert str(err.value).startswith(f"the database at {db_path(base)} is damaged")
        assert db.storage_errors == db.consecutive_storage_errors == 1
        assert chain.best_hash == best and chain.state.head_root() == root
        assert dict(db.iter_column(COL_META)) == meta and dict(db.iter_column(COL_FLAT)) == flat
    finally:
        db.close()
    with Database(chain_dir) as again:
        assert BlockStore(again).best_hash() == best
