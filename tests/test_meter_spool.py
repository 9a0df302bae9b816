"""What a meter gateway keeps on disk: its durable spool and its key files.

The spool must never lose a reading it took, never hand out a seq twice, keep refused readings for
inspection without letting them block later ones, and refuse (untouched) any file that is not an
intact spool of its own. Key files must never be overwritten and must refuse damage clearly.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import REPO, run_gridchain  # noqa: E402

from meters.keys import KeyFileError, generate_key_file, load_key_file, write_key_file  # noqa: E402
from meters.spool import PENDING, REJECTED, Spool, SpooledReading, SpoolError  # noqa: E402
from primitives.keys import Keypair  # noqa: E402

M1, M2 = b"\x01" * 32, b"\x02" * 32
GENESIS = b"\x11" * 32
I = 900


def reading(meter: bytes, seq: int, interval: int, imp: int, exp: int = 0) -> SpooledReading:
    return SpooledReading(meter, seq, interval, imp, exp, b"signed-%d" % seq)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.spool"


def test_readings_and_the_seq_counter_survive_reopening(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {"kind": "simulated", "index": 0}, M2: {}})
        s.append([reading(M1, 1, 0, 100), reading(M2, 1, 0, 5)])
        s.append([reading(M1, 2, I, 150), reading(M1, 3, 2 * I, 150, 7)])
    with Spool.open(spool_path) as s:
        pending = s.pending()
        assert [(r.meter, r.seq, r.interval_start, r.import_wh, r.export_wh) for r in pending] == [
            (M1, 1, 0, 100, 0), (M1, 2, I, 150, 0), (M1, 3, 2 * I, 150, 7), (M2, 1, 0, 5, 0)]
        assert all(r.state == PENDING and r.signed == b"signed-%d" % r.seq for r in pending)
        m1 = s.meter(M1)
        assert (m1.next_seq, m1.last_interval, m1.last_import_wh, m1.last_export_wh) == (4, 2 * I, 150, 7)
        assert m1.source == {"kind": "simulated", "index": 0}
        # the counter continues: the next reading must be seq 4, after interval 2I
        with pytest.raises(SpoolError, match="not the next seq 4"):
            s.append([reading(M1, 3, 3 * I, 160)])
        s.append([reading(M1, 4, 3 * I, 160, 7)])
        # finalised readings leave the spool, the counters stay
        s.finalise([(M1, 1), (M1, 2)])
    with Spool.open(spool_path) as s:
        assert [r.seq for r in s.readings(meter=M1)] == [3, 4]
        m1 = s.meter(M1)
        assert (m1.next_seq, m1.finalised, m1.last_finalised_seq) == (5, 2, 2)


def test_append_is_all_or_nothing_and_guards_seq_interval_and_registers(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {}})
        s.append([reading(M1, 1, I, 100, 10)])
        bad = {
            "seq gap": [reading(M1, 3, 2 * I, 110, 10)],
            "interval not after the last": [reading(M1, 2, I, 110, 10)],
            "import register backwards": [reading(M1, 2, 2 * I, 99, 10)],
            "export register backwards": [reading(M1, 2, 2 * I, 110, 9)],
            "good then bad in one batch": [reading(M1, 2, 2 * I, 110, 10), reading(M1, 3, 2 * I, 120, 10)],
            "unknown meter": [reading(M2, 1, I, 1)],
            "beyond sqlite's integers": [reading(M1, 2, 2 * I, 2**63, 10)],
        }
        for what, batch in bad.items():
            with pytest.raises(SpoolError):
                s.append(batch)
            assert [r.seq for r in s.pending()] == [1], what
            assert s.meter(M1).next_seq == 2, what


def _as_version_1(path: Path) -> None:
    """Turn a spool into what version 1 wrote: no `scheme` column on meters, version 1 in meta."""
    c = sqlite3.connect(path)
    c.execute("ALTER TABLE meters DROP COLUMN scheme")
    c.execute("UPDATE meta SET value = '1' WHERE key = 'version'")
    c.commit()
    c.close()


def test_a_version_1_spool_is_read_as_it_is_and_migrated_on_a_writable_open(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {"kind": "simulated", "index": 0}})
        s.bind_chain(GENESIS, I, 60, 4)
        s.append([reading(M1, 1, I, 100), reading(M1, 2, 2 * I, 150)])
        s.reject([(M1, 1, "Custom: the meter is suspended")])
    _as_version_1(spool_path)
    before = digest(spool_path)
    with Spool.open(spool_path, readonly=True) as s:           # inspection changes nothing
        assert s.version == 1 and s.meter(M1).scheme == "ed25519-gridchain"
        assert [r.seq for r in s.readings()] == [1, 2]
    assert digest(spool_path) == before
    r = run_gridchain("meter", "spool", str(spool_path), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["meters"][0]["scheme"] == "ed25519-gridchain", r.stderr
    with Spool.open(spool_path) as s:                          # the gateway's open migrates, keeping everything
        assert s.version == 2 and s.meta()["version"] == "2"
        m1 = s.meter(M1)
        assert (m1.scheme, m1.next_seq, m1.rejected) == ("ed25519-gridchain", 3, 1)
        assert m1.source == {"kind": "simulated", "index": 0}
        assert [(r.seq, r.state, r.signed) for r in s.readings()] == [(1, REJECTED, b"signed-1"),
                                                                       (2, PENDING, b"signed-2")]
        assert s.chain()["genesisHash"] == GENESIS
        s.append([reading(M1, 3, 3 * I, 160)])
        s.add_meters({M2: {}}, {M2: "ocmf"})
    with Spool.open(spool_path) as s:
        assert s.meter(M2).scheme == "ocmf" and [r.seq for r in s.pending()] == [2, 3]


def test_a_writer_killed_mid_stream_loses_no_committed_reading(spool_path):
    """A child process spools readings as fast as it can and reports each committed seq; SIGKILL
    arrives at an arbitrary point. Everything reported is there, the counters match the readings,
    and the file opens cleanly (no torn transaction)."""
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from meters.spool import Spool, SpooledReading
s = Spool.open({str(spool_path)!r})
s.add_meters({{b"\\x01" * 32: {{}}}})
seq = 1
while True:
    batch = [SpooledReading(b"\\x01" * 32, seq + k, (seq + k) * 900, (seq + k) * 10, 0, b"x" * 100) for k in range(50)]
    s.append(batch)
    seq += 50
    print(seq - 1, flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    reported = 0
    try:
        while reported < 2000:
            line = child.stdout.readline()
            assert line, "the writer died before it was killed"
            reported = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    with Spool.open(spool_path) as s:
        seqs = [r.seq for r in s.pending()]
        assert seqs[:reported] == list(range(1, reported + 1))
        assert seqs == list(range(1, len(seqs) + 1))          # no holes, nothing half-written
        assert len(seqs) % 50 == 0                            # whole transactions only
        m = s.meter(M1)
        assert m.next_seq == len(seqs) + 1 and m.last_interval == len(seqs) * 900
        assert m.last_import_wh == len(seqs) * 10


def test_rejected_readings_are_kept_with_the_reason_and_do_not_block_later_ones(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {}})
        s.append([reading(M1, 1, I, 10), reading(M1, 2, 2 * I, 20), reading(M1, 3, 3 * I, 30)])
        s.reject([(M1, 1, "Custom: the meter is suspended")])
        s.note_attempts([(M1, 2, "1016: The pool is full")])
        s.finalise([(M1, 2)])
        s.append([reading(M1, 4, 4 * I, 40)])
    with Spool.open(spool_path) as s:
        (rej,) = s.rejected()
        assert (rej.seq, rej.state, rej.reason) == (1, REJECTED, "Custom: the meter is suspended")
        assert [r.seq for r in s.pending()] == [3, 4]
        assert s.counts() == {"meters": 1, "pending": 2, "rejected": 1, "finalised": 1}
        assert s.meter(M1).rejected == 1
        # a rejected reading is never made pending again, nor finalised by mistake
        s.reject([(M1, 1, "again")])
        s.finalise([(M1, 2)])                                  # already gone: not counted twice
        assert s.rejected()[0].reason == "Custom: the meter is suspended"
        assert (s.meter(M1).rejected, s.meter(M1).finalised) == (1, 1)
        assert s.clear_rejected() == 1 and s.rejected() == []


def test_the_cli_lists_pending_and_rejected_readings_with_the_reason(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {}})
        s.bind_chain(GENESIS, I, 60, 4)
        s.append([reading(M1, 1, 1_800_000_000, 10), reading(M1, 2, 1_800_000_900, 20)])
        s.reject([(M1, 1, "Custom: no meter with this key is certified")])
    r = run_gridchain("meter", "spool", str(spool_path), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["chain"]["genesisHash"] == "0x" + GENESIS.hex()
    assert [(x["seq"], x["state"], x["reason"]) for x in doc["readings"]] == [
        (1, "rejected", "Custom: no meter with this key is certified"), (2, "pending", None)]
    assert doc["meters"][0]["nextSeq"] == 3
    text = run_gridchain("meter", "spool", str(spool_path))
    assert text.returncode == 0 and "no meter with this key is certified" in text.stdout


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "scrambled", "database without tables"])
def test_a_damaged_or_foreign_file_gives_one_clear_error_and_is_left_untouched(tmp_path, damage):
    path = tmp_path / "spool.db"
    if damage == "garbage":
        path.write_bytes(b"timestamp,import_wh,export_wh\n" * 100)
    elif damage == "database without tables":     # an SQLite header, no schema: never a fresh spool
        c = sqlite3.connect(path)
        c.execute("PRAGMA user_version = 7")
        c.commit()
        c.close()
    elif damage == "foreign":
        c = sqlite3.connect(path)
        c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount INTEGER)")
        c.execute("INSERT INTO invoices VALUES (1, 100)")
        c.commit()
        c.close()
    else:
        with Spool.open(path) as s:
            s.add_meters({bytes([i]) * 32: {} for i in range(1, 60)})
            for i in range(1, 60):
                s.append([reading(bytes([i]) * 32, 1, I, i)])
        data = bytearray(path.read_bytes())
        if damage == "truncated":
            data = data[:len(data) // 3 * 2 + 17]
        else:                                   # overwrite page 2 onwards with noise, keep the header page
            for k in range(4096, min(len(data), 4096 * 3)):
                data[k] = (k * 7919) % 251
        path.write_bytes(bytes(data))
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            extra.unlink(missing_ok=True)
    before = digest(path)
    with pytest.raises(SpoolError) as e:
        Spool.open(path)
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    assert digest(path) == before
    # the CLI says the same in one line
    r = run_gridchain("meter", "spool", str(path))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and str(path) in r.stderr
    assert digest(path) == before


@pytest.mark.parametrize("how", ["gateway", "create=False", "read-only"])
def test_an_empty_spool_file_is_damage_refused_and_left_untouched(tmp_path, how):
    """A zero-byte file where a spool should be is a truncated spool whose pending readings are
    gone, never a fresh one: refused with the damaged-spool error, however it is opened."""
    path = tmp_path / "spool.db"
    path.write_bytes(b"")
    kwargs = {"gateway": {}, "create=False": {"create": False}, "read-only": {"readonly": True}}[how]
    with pytest.raises(SpoolError) as e:
        Spool.open(path, **kwargs)
    message = str(e.value)
    assert str(path) in message and "empty file" in message and "nothing was changed" in message
    assert "\n" not in message
    assert path.read_bytes() == b"" and [p.name for p in tmp_path.iterdir()] == ["spool.db"]


def test_the_gateway_commands_refuse_an_empty_spool_in_one_line(tmp_path):
    path = tmp_path / "spool.db"
    path.write_bytes(b"")
    key = tmp_path / "meter.key"
    generate_key_file(key)
    for args in (("meter", "spool", str(path)),
                 ("meter", "run", "--key", str(key), "--spool", str(path), "--rpc", "http://127.0.0.1:9")):
        r = run_gridchain(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1, (args, r.stderr)
        assert str(path) in lines[0] and "empty file" in lines[0], args
        assert path.read_bytes() == b""


def test_create_makes_a_new_spool_only_where_there_is_no_file(tmp_path):
    path = tmp_path / "new.spool"
    with pytest.raises(SpoolError, match="does not exist"):
        Spool.open(path, create=False)
    assert not path.exists()
    with Spool.open(path) as s:                  # the default: create if absent
        s.add_meters({M1: {}})
    # the new spool appeared whole: no temporary file is left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["new.spool"]
    with Spool.open(path, create=False) as s:
        assert s.meter(M1).next_seq == 1
    with pytest.raises(SpoolError, match="directory .* does not exist"):
        Spool.open(tmp_path / "missing" / "x.spool")


def test_a_spool_belongs_to_one_chain_and_one_gateway(spool_path):
    with Spool.open(spool_path) as s:
        s.bind_chain(GENESIS, I, 60, 4)
        s.bind_chain(GENESIS, I, 60, 4)            # the same chain again: fine
        with pytest.raises(SpoolError, match="belongs to the chain with genesis 0x1111"):
            s.bind_chain(b"\x22" * 32, I, 60, 4)
        with pytest.raises(SpoolError, match="in use by another gateway"):
            Spool.open(spool_path)
        # read-only inspection while the gateway holds it is fine
        with Spool.open(spool_path, readonly=True) as ro:
            assert ro.chain()["genesisHash"] == GENESIS
    with Spool.open(spool_path) as s:              # the lock went with the first gateway
        assert s.chain()["intervalS"] == I


def test_chain_state_only_ever_moves_the_counters_forward(spool_path):
    with Spool.open(spool_path) as s:
        s.add_meters({M1: {}, M2: {}})
        s.append([reading(M1, 1, 10 * I, 500, 50), reading(M1, 2, 11 * I, 600, 60)])
        out = s.sync_meters({
            M1: (1, 10 * I, 500, 50),              # the chain is behind the spool: nothing moves
            M2: (41, 7 * I, 9_000, 800),           # a key used before (or a lost spool): continue above it
        })
        assert (out[M1].next_seq, out[M1].last_interval, out[M1].last_import_wh) == (3, 11 * I, 600)
        assert (out[M2].next_seq, out[M2].last_interval, out[M2].last_import_wh, out[M2].last_export_wh) == (
            42, 7 * I, 9_000, 800)
        assert out[M1].synced and out[M2].synced
        with pytest.raises(SpoolError):
            s.append([reading(M2, 42, 8 * I, 8_999, 800)])   # below the chain's registers
        s.append([reading(M2, 42, 8 * I, 9_100, 800)])


# ---------------------------------------------------------------------------------------------
# key files
# ---------------------------------------------------------------------------------------------

def test_key_files_are_private_atomic_and_never_overwritten(tmp_path):
    path = tmp_path / "meter.key"
    kp = generate_key_file(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_key_file(path) == kp
    original = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_file(path)
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_file(path, Keypair.from_uri("//Other"))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["meter.key"]      # no temporary files left
    dev = generate_key_file(tmp_path / "bob.key", "//Bob//meter")
    assert dev.public_key == Keypair.from_uri("//Bob//meter").public_key


def test_a_missing_corrupt_or_tampered_key_file_is_refused_clearly(tmp_path):
    good = tmp_path / "good.key"
    kp = generate_key_file(good)
    doc = json.loads(good.read_text())
    cases = {
        "missing": (None, "does not exist"),
        "not json": (b"\x00\x01garbage", "not JSON"),
        "other json": (json.dumps({"hello": 1}).encode(), "not a meter key file"),
        "short seed": (json.dumps({**doc, "seed": "0x1234"}).encode(), "32 bytes"),
        "tampered public key": (json.dumps({**doc, "publicKey": "0x" + "00" * 32}).encode(), "does not belong"),
        "newer version": (json.dumps({**doc, "version": 9}).encode(), "version"),
    }
    for what, (content, expected) in cases.items():
        path = tmp_path / f"{what}.key"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(KeyFileError) as e:
            load_key_file(path)
        assert expected in str(e.value) and str(path) in str(e.value), what
    assert load_key_file(good) == kp
    r = run_gridchain("meter", "key", "inspect", str(tmp_path / "tampered public key.key"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "does not belong" in r.stderr
    r = run_gridchain("meter", "key", "generate", "--out", str(good))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "already exists" in r.stderr
    r = run_gridchain("meter", "key", "inspect", str(good), "--output-type", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["meterId"] == "0x" + kp.public_key.hex()
