"""The gateway's durable spool: every reading is on disk before it is sent, until the chain has it.

One SQLite file per gateway holds all its meters. Guarantees, and how they are kept:

  - **Nothing measured is lost.** A reading is committed (with its seq, its registers and its signed
    bytes) before anything is sent, in a transaction that also advances the meter's next seq. SQLite
    in WAL mode with `synchronous=FULL` makes a commit durable before it returns: after a process kill
    or a power cut the spool holds every reading that was ever sent, and the seq counter is never
    behind one that was used.
  - **Nothing is sent twice as two different readings.** The seq and the signed bytes are fixed when
    the reading is spooled; a resend after a crash or an outage is the identical extrinsic, which the
    chain accepts at most once (its pool and its metering rules key readings by meter and seq).
  - **A reading leaves the spool only when it is final**: the submitter deletes it once the chain's
    finalized state shows it (see `meters.submitter`). A reading the node refused is kept, marked
    `rejected` with the node's reason, for inspection (`gridchain meter spool FILE`); it is not retried
    and does not hold back the meter's later readings.
  - **Registers never go backwards, seq never repeats**: `append` refuses a reading whose seq is not
    the meter's next one, whose interval is not after the meter's last, or whose registers are below
    the last reading's. A gateway that restarts continues from the spool's counters.
  - **A file that is not ours is never touched**: a file that is not an SQLite database, an SQLite
    database with tables of some other program, or a damaged one gives one SpoolError naming the
    file, before anything is written to it. An empty file (zero bytes, or an SQLite database without
    tables) is damage too, never a fresh spool: a truncated spool must not silently become an empty
    one and drop its pending readings. A spool is bound to one chain (genesis hash) on first
    contact; opening it against another chain is refused.
  - **A new spool appears whole or not at all**: `create` on a path where no file exists builds the
    spool in a temporary file beside it and links it into place, so a crash while creating never
    leaves an empty file at the path (which the next start would refuse).
  - **One gateway per spool**: the file is locked (flock) while a gateway has it open, so two
    processes cannot hand out the same seq. Read-only inspection needs no lock.

Two kinds of meter share a spool, told apart by the meter's `scheme`: gridchain's own ed25519
meters (`ed25519-gridchain`), whose readings the gateway builds and signs, and field meters (`ocmf`,
`sml-edl40`, `dlms-general-signing`), whose records the meter signed itself and the gateway keeps
byte for byte in `signed`. A field record's seq is the format's own counter (OCMF pagination, SML
pagination, DLMS invoke id), the chain's seq for it, which starts wherever the meter's counter
stands; so for a field meter `append` requires a seq at or above the next one rather than exactly
it, and does not judge its registers (the chain does, and a refusal is kept with its reason).

Version 1 spools (before field meters) are migrated in place on the first writable open: the
meters table gains its `scheme` column, every existing meter being an ed25519 one. A read-only
open reads a version 1 spool as it is.

SQLite stores signed 64-bit integers, so a spooled seq or register must be below 2^63 (9.2e18 Wh;
no meter gets there).
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

SPOOL_FORMAT = "gridchain-meter-spool"
SPOOL_VERSION = 2
#: spool versions this gateway reads (older ones are migrated on a writable open)
READABLE_VERSIONS = (1, 2)
_SQLITE_MAGIC = b"SQLite format 3\x00"
I64_MAX = 2**63 - 1

PENDING = "pending"
REJECTED = "rejected"

#: the scheme of gridchain's own meters (the chain's name for it, as `energy_meter` reports it)
ED25519 = "ed25519-gridchain"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE meters (
    meter BLOB PRIMARY KEY,              -- 32 bytes: the meter's id on chain (ed25519 public key, or a
                                         -- field meter's id derived from its scheme and key)
    next_seq INTEGER NOT NULL,           -- seq of the next reading, advanced with every reading spooled
    last_interval INTEGER,               -- interval_start of the last reading spooled (NULL: none yet)
    last_import_wh INTEGER NOT NULL,     -- registers of that reading (never decrease)
    last_export_wh INTEGER NOT NULL,
    source TEXT NOT NULL,                -- JSON: the register source's persistent state
    synced INTEGER NOT NULL,             -- 1 once the chain's view of the meter was taken into account
    finalised INTEGER NOT NULL DEFAULT 0,       -- readings confirmed final and removed
    last_finalised_seq INTEGER,
    rejected INTEGER NOT NULL DEFAULT 0,        -- readings the chain refused
    added_at REAL NOT NULL,
    scheme TEXT NOT NULL DEFAULT 'ed25519-gridchain'   -- how its readings are signed and sent
) WITHOUT ROWID;
CREATE TABLE readings (
    meter BLOB NOT NULL,
    seq INTEGER NOT NULL,
    interval_start INTEGER NOT NULL,
    import_wh INTEGER NOT NULL,
    export_wh INTEGER NOT NULL,
    signed BLOB,                         -- the signed reading (NULL until the chain's genesis is known),
                                         -- or a field meter's record exactly as the meter sent it
    state TEXT NOT NULL CHECK (state IN ('pending', 'rejected')),
    reason TEXT,                         -- why the chain refused it
    created_at REAL NOT NULL,            -- wall clock when spooled
    attempts INTEGER NOT NULL DEFAULT 0, -- times it was sent
    last_error TEXT,                     -- last transient failure while sending
    PRIMARY KEY (meter, seq)
) WITHOUT ROWID;
CREATE INDEX readings_by_state ON readings (state, meter, seq);
"""


class SpoolError(Exception):
    """The spool file cannot be used; the message names the file and what is wrong."""


@dataclass
class MeterRecord:
    """A meter's counters as the spool keeps them."""

    meter: bytes
    next_seq: int
    last_interval: int | None
    last_import_wh: int
    last_export_wh: int
    source: dict[str, Any] = field(default_factory=dict)
    synced: bool = False
    finalised: int = 0
    last_finalised_seq: int | None = None
    rejected: int = 0
    scheme: str = ED25519

    @property
    def field(self) -> bool:
        """A field meter (its records are signed by the meter, not by the gateway)."""
        return self.scheme != ED25519


@dataclass
class SpooledReading:
    """One reading in the spool: pending until final, or rejected with the chain's reason."""

    meter: bytes
    seq: int
    interval_start: int
    import_wh: int
    export_wh: int
    signed: bytes | None
    state: str = PENDING
    reason: str | None = None
    created_at: float = 0.0
    attempts: int = 0
    last_error: str | None = None


def _check_i64(name: str, v: int) -> None:
    if type(v) is not int or not 0 <= v <= I64_MAX:
        raise SpoolError(f"{name} {v!r} cannot be spooled (0 .. 2^63-1)")


class Spool:
    """An open spool. Not thread-safe; the gateway's event loop owns it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, readonly: bool,
                 version: int = SPOOL_VERSION) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self.readonly = readonly
        self.version = version
        # a version 1 spool opened read-only has no scheme column: all its meters are ed25519 ones
        scheme = "scheme" if version >= 2 else f"'{ED25519}'"
        self._meter_columns = self._METER_COLUMNS + f", {scheme}"

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True, readonly: bool = False) -> Spool:
        """Open the spool at `path`, or create it if `create` and no file exists there.

        Raises SpoolError, naming the file, for a foreign, damaged or empty file, a spool of a newer
        version, one locked by another gateway, or a missing file when `create` is false. A spool of
        an older version is migrated (in one transaction) unless `readonly`."""
        path = Path(path)
        if path.is_dir():
            raise SpoolError(f"spool {path} is a directory")
        if path.exists():
            _check_magic(path)
        elif readonly or not create:
            raise SpoolError(f"spool {path} does not exist")
        else:
            _create_file(path)
        lock_fd = None if readonly else _lock(path)
        try:
            conn = _connect(path, readonly)
            try:
                version = _inspect(conn, path)
                if not readonly:
                    _durable(conn, path)
                    version = _migrate(conn, path, version)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd, readonly, version)

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)       # after sqlite: closing an fd drops POSIX locks on the file
                self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _write(self) -> _Txn:
        if self.readonly:
            raise SpoolError(f"spool {self.path} is open read-only")
        return _Txn(self._conn, self.path)

    def _query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as e:
            raise SpoolError(f"spool {self.path} cannot be read: {e}") from None

    # -- chain binding ----------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def chain(self) -> dict[str, Any] | None:
        """The chain this spool belongs to: {"genesisHash": bytes, "intervalS", "maxDriftS",
        "settlementWindowIntervals"}; None before the first contact with a node."""
        m = self.meta()
        if "genesis_hash" not in m:
            return None
        return {"genesisHash": bytes.fromhex(m["genesis_hash"]), "intervalS": int(m["interval_s"]),
                "maxDriftS": int(m["max_drift_s"]),
                "settlementWindowIntervals": int(m["settlement_window_intervals"])}

    def bind_chain(self, genesis_hash: bytes, interval_s: int, max_drift_s: int, window_intervals: int) -> None:
        """Record the chain on first contact; afterwards refuse another chain or a changed interval
        (readings already signed for one chain are void on another)."""
        known = self.chain()
        if known is not None:
            if known["genesisHash"] != genesis_hash:
                raise SpoolError(f"spool {self.path} belongs to the chain with genesis 0x{known['genesisHash'].hex()}, "
                                 f"but the node is on 0x{genesis_hash.hex()}; use another spool for that chain")
            if known["intervalS"] != interval_s:
                raise SpoolError(f"spool {self.path} was written for {known['intervalS']} s intervals, "
                                 f"but the chain now uses {interval_s} s")
            if (known["maxDriftS"], known["settlementWindowIntervals"]) == (max_drift_s, window_intervals):
                return
        with self._write() as c:
            c.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                ("genesis_hash", genesis_hash.hex()), ("interval_s", str(interval_s)),
                ("max_drift_s", str(max_drift_s)), ("settlement_window_intervals", str(window_intervals))])

    # -- meters -----------------------------------------------------------------------------------

    _METER_COLUMNS = ("meter, next_seq, last_interval, last_import_wh, last_export_wh, source, synced, "
                      "finalised, last_finalised_seq, rejected")

    @staticmethod
    def _meter_record(r: tuple) -> MeterRecord:
        return MeterRecord(r[0], r[1], r[2], r[3], r[4], _load_json(r[5]), bool(r[6]), r[7], r[8], r[9], r[10])

    def meters(self) -> dict[bytes, MeterRecord]:
        rows = self._query(f"SELECT {self._meter_columns} FROM meters ORDER BY meter")
        return {r[0]: self._meter_record(r) for r in rows}

    def meter(self, meter: bytes) -> MeterRecord | None:
        rows = self._query(f"SELECT {self._meter_columns} FROM meters WHERE meter = ?", (meter,))
        return self._meter_record(rows[0]) if rows else None

    def add_meters(self, meters: dict[bytes, dict[str, Any]], schemes: dict[bytes, str] | None = None) -> None:
        """Meters new to this gateway (id -> source state; `schemes`: id -> scheme for field meters,
        ed25519 otherwise), in one transaction: seq 1, no readings, not yet compared with the chain.
        Meters already in the spool are left as they are; one of them under another scheme is a
        SpoolError (its spooled readings could not be sent as the other kind)."""
        schemes = schemes or {}
        for m in meters:
            if len(m) != 32:
                raise SpoolError("a meter id is 32 bytes")
        if not meters:
            return
        known = self.meters()
        for m in meters:
            if m in known and known[m].scheme != schemes.get(m, ED25519):
                raise SpoolError(f"meter 0x{m.hex()} is in spool {self.path} as a {known[m].scheme} meter, "
                                 f"not {schemes.get(m, ED25519)}")
        now = time.time()
        with self._write() as c:
            c.executemany("INSERT OR IGNORE INTO meters (meter, next_seq, last_interval, last_import_wh, "
                          "last_export_wh, source, synced, added_at, scheme) VALUES (?, 1, NULL, 0, 0, ?, 0, ?, ?)",
                          [(m, json.dumps(src or {}), now, schemes.get(m, ED25519)) for m, src in meters.items()])

    def add_meter(self, meter: bytes, *, source: dict[str, Any] | None = None, scheme: str = ED25519) -> MeterRecord:
        self.add_meters({meter: source or {}}, {meter: scheme})
        rec = self.meter(meter)
        assert rec is not None
        return rec

    def sync_meters(self, chain: dict[bytes, tuple[int | None, int | None, int, int]]) -> dict[bytes, MeterRecord]:
        """Take the chain's record of meters into account, once each, in one transaction (a key used
        before, a lost spool): meter -> (last seq, last interval start, import and export registers),
        None for a meter with no reading on chain. The next seq goes above the chain's last; a meter
        whose last spooled interval is older than the chain's continues from the chain's interval and
        registers. Counters only ever move forward. Returns the updated records."""
        out: dict[bytes, MeterRecord] = {}
        with self._write() as c:
            for meter, (last_seq, last_interval, chain_imp, chain_exp) in chain.items():
                row = c.execute(f"SELECT {self._meter_columns} FROM meters WHERE meter = ?", (meter,)).fetchone()
                if row is None:
                    raise SpoolError(f"meter 0x{meter.hex()} is not in spool {self.path}")
                rec = self._meter_record(row)
                if last_seq is not None:
                    rec.next_seq = max(rec.next_seq, last_seq + 1)
                if last_interval is not None and (rec.last_interval is None or last_interval > rec.last_interval):
                    rec.last_interval = last_interval
                    rec.last_import_wh = max(rec.last_import_wh, chain_imp)
                    rec.last_export_wh = max(rec.last_export_wh, chain_exp)
                for name, v in (("seq", rec.next_seq), ("import register", rec.last_import_wh),
                                ("export register", rec.last_export_wh)):
                    _check_i64(name, v)
                rec.synced = True
                c.execute("UPDATE meters SET next_seq = ?, last_interval = ?, last_import_wh = ?, "
                          "last_export_wh = ?, synced = 1 WHERE meter = ?",
                          (rec.next_seq, rec.last_interval, rec.last_import_wh, rec.last_export_wh, meter))
                out[meter] = rec
        return out

    def set_source(self, meter: bytes, source: dict[str, Any]) -> None:
        with self._write() as c:
            c.execute("UPDATE meters SET source = ? WHERE meter = ?", (json.dumps(source), meter))

    # -- readings ---------------------------------------------------------------------------------

    def append(self, readings: list[SpooledReading], sources: dict[bytes, dict[str, Any]] | None = None) -> None:
        """Spool new readings, durably, in one transaction, and advance each meter's counters.

        Each must carry its meter's next seq, an interval after the meter's last and registers not
        below the last; otherwise nothing is written (SpoolError). A field meter's record needs a
        seq at or above the next one (its counter starts where the meter's stands) and an interval
        after the last; its registers are the chain's to judge. `sources` optionally updates meters'
        source state in the same transaction."""
        if not readings and not sources:
            return
        with self._write() as c:
            state: dict[bytes, list] = {}
            field_meter: dict[bytes, bool] = {}
            for r in readings:
                cur = state.get(r.meter)
                if cur is None:
                    row = c.execute("SELECT next_seq, last_interval, last_import_wh, last_export_wh, "
                                    f"{'scheme' if self.version >= 2 else repr(ED25519)} FROM meters "
                                    "WHERE meter = ?", (r.meter,)).fetchone()
                    if row is None:
                        raise SpoolError(f"meter 0x{r.meter.hex()} is not in spool {self.path}")
                    cur = state[r.meter] = list(row[:4])
                    field_meter[r.meter] = row[4] != ED25519
                next_seq, last_interval, last_imp, last_exp = cur
                for name, v in (("seq", r.seq), ("interval start", r.interval_start),
                                ("import register", r.import_wh), ("export register", r.export_wh)):
                    _check_i64(name, v)
                if r.seq != next_seq and not (field_meter[r.meter] and r.seq > next_seq):
                    raise SpoolError(f"meter 0x{r.meter.hex()}: reading seq {r.seq} is not the next seq {next_seq}")
                if last_interval is not None and r.interval_start <= last_interval:
                    raise SpoolError(f"meter 0x{r.meter.hex()}: interval {r.interval_start} is not after the last "
                                     f"spooled one ({last_interval})")
                if not field_meter[r.meter] and (r.import_wh < last_imp or r.export_wh < last_exp):
                    raise SpoolError(f"meter 0x{r.meter.hex()}: registers ({r.import_wh}, {r.export_wh}) are below "
                                     f"the last reading's ({last_imp}, {last_exp})")
                cur[:] = [r.seq + 1, r.interval_start, r.import_wh, r.export_wh]
            now = time.time()
            c.executemany(
                "INSERT INTO readings (meter, seq, interval_start, import_wh, export_wh, signed, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(r.meter, r.seq, r.interval_start, r.import_wh, r.export_wh, r.signed, r.created_at or now)
                 for r in readings])
            c.executemany("UPDATE meters SET next_seq = ?, last_interval = ?, last_import_wh = ?, "
                          "last_export_wh = ? WHERE meter = ?", [(*v, k) for k, v in state.items()])
            if sources:
                c.executemany("UPDATE meters SET source = ? WHERE meter = ?",
                              [(json.dumps(s), m) for m, s in sources.items()])

    def set_signed(self, items: list[tuple[bytes, int, bytes]]) -> None:
        """Store the signed bytes of readings spooled before the chain's genesis hash was known."""
        if not items:
            return
        with self._write() as c:
            c.executemany("UPDATE readings SET signed = ? WHERE meter = ? AND seq = ? AND signed IS NULL",
                          [(s, m, q) for m, q, s in items])

    def finalise(self, items: list[tuple[bytes, int]]) -> None:
        """The chain's finalized state holds these readings: remove them, count them per meter."""
        if not items:
            return
        with self._write() as c:
            for m, q in items:
                if c.execute("DELETE FROM readings WHERE meter = ? AND seq = ?", (m, q)).rowcount:
                    c.execute("UPDATE meters SET finalised = finalised + 1, "
                              "last_finalised_seq = max(coalesce(last_finalised_seq, 0), ?) WHERE meter = ?", (q, m))

    def reject(self, items: list[tuple[bytes, int, str]]) -> None:
        """The chain refused these readings: keep them, marked with the reason, and never resend them."""
        if not items:
            return
        with self._write() as c:
            for m, q, reason in items:
                if c.execute("UPDATE readings SET state = 'rejected', reason = ? WHERE meter = ? AND seq = ? "
                             "AND state = 'pending'", (reason, m, q)).rowcount:
                    c.execute("UPDATE meters SET rejected = rejected + 1 WHERE meter = ?", (m,))

    def note_attempts(self, items: list[tuple[bytes, int, str | None]]) -> None:
        """Count a send of each reading, with the transient error it met (None: the node took it)."""
        if not items:
            return
        with self._write() as c:
            c.executemany("UPDATE readings SET attempts = attempts + 1, last_error = coalesce(?, last_error) "
                          "WHERE meter = ? AND seq = ?", [(err, m, q) for m, q, err in items])

    def clear_rejected(self) -> int:
        """Delete every rejected reading (after inspection); returns how many."""
        with self._write() as c:
            return c.execute("DELETE FROM readings WHERE state = 'rejected'").rowcount

    def readings(self, state: str | None = None, meter: bytes | None = None) -> list[SpooledReading]:
        """Readings in the spool, by meter then seq; only `state` ones and one meter's if given."""
        sql = ("SELECT meter, seq, interval_start, import_wh, export_wh, signed, state, reason, created_at, "
               "attempts, last_error FROM readings")
        where, args = [], []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if meter is not None:
            where.append("meter = ?")
            args.append(meter)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY meter, seq"
        return [SpooledReading(*r) for r in self._query(sql, args)]

    def pending(self) -> list[SpooledReading]:
        return self.readings(PENDING)

    def rejected(self) -> list[SpooledReading]:
        return self.readings(REJECTED)

    def counts(self) -> dict[str, int]:
        rows = dict(self._query("SELECT state, count(*) FROM readings GROUP BY state"))
        (meters, finalised), = self._query("SELECT count(*), coalesce(sum(finalised), 0) FROM meters")
        return {"meters": meters, "pending": rows.get(PENDING, 0), "rejected": rows.get(REJECTED, 0),
                "finalised": finalised}


class _Txn:
    """BEGIN IMMEDIATE ... COMMIT, with rollback on error; sqlite errors become SpoolErrors."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise SpoolError(f"spool {self.path} cannot be written: {e}") from None
        return self.conn

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as e:
                self.conn.execute("ROLLBACK")
                raise SpoolError(f"spool {self.path} cannot be written: {e}") from None
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(exc, sqlite3.Error):
            raise SpoolError(f"spool {self.path} cannot be written: {exc}") from None


def _load_json(text: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def _check_magic(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        raise SpoolError(f"cannot read spool {path}: {e.strerror or e}") from None
    if not head:
        raise SpoolError(f"{path} is not a meter spool (an empty file: a truncated or damaged spool, or "
                         "some other file); nothing was changed")
    if head != _SQLITE_MAGIC:
        raise SpoolError(f"{path} is not a meter spool (not an SQLite database: damaged, or some other "
                         "file); nothing was changed")


def _lock(path: Path) -> int:
    """An exclusive lock on the spool for this process (released on close or exit)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        raise SpoolError(f"cannot open spool {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SpoolError(f"spool {path} is in use by another gateway process") from None
    return fd


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn
    except sqlite3.Error as e:
        raise SpoolError(f"cannot open spool {path}: {e}") from None


def _inspect(conn: sqlite3.Connection, path: Path) -> int:
    """Check the file is an intact spool of a version we read; returns its version. Only reads: a
    foreign, damaged or empty file is left exactly as it was."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise SpoolError(f"{path} is not a usable meter spool (damaged SQLite file: {e}); nothing was changed") from None
    if not tables:
        raise SpoolError(f"{path} is not a meter spool (an empty SQLite database: a damaged spool, or some "
                         "other file); nothing was changed")
    if not {"meta", "meters", "readings"} <= tables:
        raise SpoolError(f"{path} is not a meter spool (an SQLite database of something else: tables "
                         f"{', '.join(sorted(tables))}); nothing was changed")
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('format', 'version')"))
        check = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        raise SpoolError(f"{path} is damaged ({e}); nothing was changed") from None
    if meta.get("format") != SPOOL_FORMAT:
        raise SpoolError(f"{path} is not a meter spool (format {meta.get('format')!r}); nothing was changed")
    if meta.get("version") not in {str(v) for v in READABLE_VERSIONS}:
        raise SpoolError(f"{path} is a meter spool of version {meta.get('version')}, this gateway reads "
                         f"versions {' and '.join(map(str, READABLE_VERSIONS))}")
    if check != [("ok",)]:
        raise SpoolError(f"{path} is damaged (SQLite integrity check: {check[0][0]}); nothing was changed")
    return int(meta["version"])


def _migrate(conn: sqlite3.Connection, path: Path, version: int) -> int:
    """Bring an older spool to SPOOL_VERSION in one transaction; returns the version it is now.
    1 -> 2: meters gain `scheme` (field meters); every meter of a version 1 spool is an ed25519 one."""
    if version == SPOOL_VERSION:
        return version
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"ALTER TABLE meters ADD COLUMN scheme TEXT NOT NULL DEFAULT '{ED25519}'")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(SPOOL_VERSION),))
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise SpoolError(f"spool {path} (version {version}) cannot be migrated to version {SPOOL_VERSION}: "
                         f"{e}") from None
    return SPOOL_VERSION


def _create_file(path: Path) -> None:
    """Create a new, empty spool at `path`, where no file exists: built in a temporary file in the
    same directory, synced, then hard-linked into place (which, unlike a rename, never replaces a
    file another gateway created meanwhile; that one is then opened instead). The path therefore
    never holds a half-created spool, and an empty file there can only be damage."""
    if not path.parent.is_dir():
        raise SpoolError(f"cannot create spool {path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    leftovers = (tmp, tmp.with_name(tmp.name + "-journal"))
    try:
        for p in leftovers:
            p.unlink(missing_ok=True)
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
        except sqlite3.Error as e:
            raise SpoolError(f"cannot create spool {path}: {e}") from None
        try:
            _create(conn, path)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass                                  # another gateway was quicker: open its spool
        except PermissionError:                   # a file system without hard links
            if not path.exists():
                os.rename(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise SpoolError(f"cannot create spool {path}: {e.strerror or e}") from None
    finally:
        for p in leftovers:
            p.unlink(missing_ok=True)


def _create(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";\n"))):
            conn.execute(stmt)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                         [("format", SPOOL_FORMAT), ("version", str(SPOOL_VERSION)),
                          ("created_at", str(int(time.time())))])
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise SpoolError(f"cannot create spool {path}: {e}") from None


def _durable(conn: sqlite3.Connection, path: Path) -> None:
    """WAL with full sync: a commit is on disk when it returns, and readers never block the writer."""
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as e:
        raise SpoolError(f"cannot open spool {path}: {e}") from None
    if str(mode).lower() != "wal":
        raise SpoolError(f"spool {path}: the file system does not support SQLite's WAL journal (got {mode})")
