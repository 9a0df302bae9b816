"""`gridchain meter ...`: the gateway's command line (keys, the run loop, the spool).

    gridchain meter key generate --out FILE [--uri URI]
    gridchain meter key inspect FILE
    gridchain meter run --key FILE [--key FILE ...] --source csv:PATH|simulated[:I[:SEED]] [...]
                        --rpc URL[,URL...] [--spool FILE] [--interval-s N] [--clock system|node|spec:FILE]
                        [--units Wh|kWh] [--columns timestamp=NAME,import=NAME[,export=NAME]] [--label end|start]
    gridchain meter run --source ocmf:PATH|sml:PATH|dlms:PATH --meter-id HEX [...]   (field meters)
    gridchain meter spool FILE [--json] [--clear-rejected]
    gridchain meter verify [FILE|-] [--format ocmf|sml-edl40|dlms|auto] [--public-key HEX] [--json]

Every bad input (a wrong key file, a damaged or foreign spool, a malformed source, a node on another
chain) ends the command with one line on stderr and a non-zero exit. An unreachable node is not an
error for `run`: the gateway keeps spooling and retrying, and logs the outage once. `run` stops
cleanly on SIGINT or SIGTERM (exit 0); the spool keeps whatever was not yet final.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from meters.keys import (
    KeyFileError,
    generate_key_file,
    load_key_file,
    loose_permissions,
)
from meters.sources import SourceError, coarse_note, parse_columns, parse_source
from meters.spool import SpoolError

DEFAULT_RPC = "http://127.0.0.1:9944"
DEFAULT_SPOOL_NAME = "meter-spool.sqlite"

log = logging.getLogger("gridchain.meter")


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group("meter")
def meter() -> None:
    """Smart-meter gateway: meter keys, signed readings, the durable spool."""


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

@meter.group("key")
def key() -> None:
    """Create and inspect meter key files (the meter's id is its public key)."""


def _key_fields(path: Path, public_key: bytes) -> dict[str, str]:
    from primitives import ss58  # noqa: PLC0415
    return {"file": str(path), "meterId": "0x" + public_key.hex(), "ss58Address": ss58.encode(public_key)}


def _print_fields(fields: dict[str, str], output_type: str) -> None:
    if output_type == "json":
        click.echo(json.dumps(fields, indent=2))
        return
    labels = {"file": "Key file", "meterId": "Meter id (public key)", "ss58Address": "SS58 address"}
    for k, v in fields.items():
        click.echo(f"{labels.get(k, k) + ':':<24}{v}")


@key.command("generate")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="The key file to create.")
@click.option("--uri", default=None,
              help="Store the key of this secret URI (e.g. //Bob//meter, a mnemonic or a 0x seed) "
                   "instead of a fresh random one.")
@click.option("--output-type", type=click.Choice(["text", "json"]), default="text", show_default=True)
def key_generate(out: Path, uri: str | None, output_type: str) -> None:
    """Create a meter key file (mode 0600; an existing file is never overwritten)."""
    try:
        kp = generate_key_file(out, uri)
    except KeyFileError as e:
        _fail(str(e))
    _print_fields(_key_fields(out, kp.public_key), output_type)


@key.command("inspect")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--output-type", type=click.Choice(["text", "json"]), default="text", show_default=True)
def key_inspect(file: Path, output_type: str) -> None:
    """Show the meter id of a key file (what the DSO certifies)."""
    try:
        kp = load_key_file(file)
    except KeyFileError as e:
        _fail(str(e))
    _print_fields(_key_fields(file, kp.public_key), output_type)


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------

def _urls(text: str) -> list[str]:
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        _fail("--rpc needs at least one URL")
    for u in urls:
        if not u.startswith(("http://", "https://", "ws://", "wss://")):
            _fail(f"--rpc: {u!r} is not an http(s):// or ws(s):// URL")
    return urls


def _clock(spec: str) -> Callable[[], float]:
    import time  # noqa: PLC0415

    from meters.gateway import NodeChainClock  # noqa: PLC0415
    if spec == "system":
        return time.time
    if spec == "node":
        return NodeChainClock()
    if spec.startswith("spec:"):
        from primitives.chain_clock import ChainClock, ChainClockError  # noqa: PLC0415
        path = Path(spec[5:])
        try:
            doc = json.loads(path.read_text())
        except OSError as e:
            _fail(f"--clock {spec}: cannot read {path}: {e.strerror or e}")
        except ValueError:
            _fail(f"--clock {spec}: {path} is not JSON")
        try:
            cc = ChainClock.from_spec(doc if isinstance(doc, dict) else {})
        except ChainClockError as e:
            _fail(f"--clock {spec}: {e}")
        if cc is None:
            _fail(f"--clock {spec}: the chain spec has no consensus.timeWarp (use --clock system)")
        return cc.now_s
    _fail(f"--clock must be system, node or spec:FILE, not {spec!r}")
    raise AssertionError


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("gridchain.meter")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _meter_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip().removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        _fail(f"--meter-id {text!r} is not a meter id (0x and 64 hex digits, as energy_meter and the "
              "FieldMeterCertified event show it)")
    return raw


def _field_meters(specs: list[str], meter_ids: tuple[str, ...]) -> list[Any]:
    """The field meters of `meter run`: each ocmf:/sml:/dlms: source with its --meter-id, in order."""
    from meters.gateway import FieldGatewayMeter  # noqa: PLC0415
    from meters.record_sources import RecordSourceError, parse_record_source  # noqa: PLC0415
    if len(specs) != len(meter_ids):
        _fail(f"each ocmf:/sml:/dlms: source needs its field meter's --meter-id, in the same order: "
              f"{len(specs)} such source(s), {len(meter_ids)} --meter-id")
    out = []
    for spec, mid in zip(specs, meter_ids):
        try:
            out.append(FieldGatewayMeter(_meter_id(mid), parse_record_source(spec)))
        except RecordSourceError as e:
            _fail(str(e))
    return out


@meter.command("run")
@click.option("--key", "keys", type=click.Path(path_type=Path), multiple=True,
              help="A meter key file of one of gridchain's own meters; repeat for every such meter.")
@click.option("--source", "sources", multiple=True,
              help="csv:PATH or simulated[:INDEX[:SEED]] for --key meters: once for all (simulated: household "
                   "INDEX defaults to the meter's position; the default) or once per --key, in the same order. "
                   "ocmf:PATH, sml:PATH or dlms:PATH for a field meter's own signed records (a file appended "
                   "to, one record per line, SML and DLMS as hex; or a directory, one record per file), each "
                   "with a --meter-id.")
@click.option("--meter-id", "meter_ids", multiple=True, metavar="HEX",
              help="A field meter's id on chain (0x + 64 hex digits), once per ocmf:/sml:/dlms: source, in the "
                   "same order; checked at start: the chain must know it under the source's scheme.")
@click.option("--rpc", "rpc", default=DEFAULT_RPC, show_default=True,
              help="Node endpoints, comma-separated; the next is used when one fails.")
@click.option("--spool", "spool_path", type=click.Path(path_type=Path), default=None,
              help=f"The gateway's spool (default: {DEFAULT_SPOOL_NAME} next to the first key file).")
@click.option("--interval-s", type=click.IntRange(60, 86_400), default=None,
              help="Delivery interval length, only for a node whose metadata lacks grid.interval_s "
                   "(the chain's default is 900).")
@click.option("--clock", "clock_spec", default="system", show_default=True,
              help="Chain time: system (real time), node (the node's best block time, for --time-warp "
                   "dev chains) or spec:FILE (a chain spec's consensus.timeWarp).")
@click.option("--poll-s", type=click.FloatRange(0.02, 60), default=1.0, show_default=True,
              help="Seconds between rounds.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=1000, show_default=True,
              help="Calls per JSON-RPC batch.")
@click.option("--max-in-flight", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Readings sent and not yet final, at most (the node's pool holds 8,192).")
@click.option("--units", type=click.Choice(["Wh", "kWh"]), default="Wh", show_default=True,
              help="Unit of the CSV registers; kWh (decimals allowed) is converted exactly and floored to whole Wh.")
@click.option("--columns", "columns_spec", default=None, metavar="timestamp=NAME,import=NAME[,export=NAME]",
              help="Read a CSV whose columns have other names (others are ignored); without export=, the "
                   "meter is import-only (export register 0). Needs --label.")
@click.option("--label", type=click.Choice(["end", "start"]), default=None,
              help="Which end of its period a CSV row's time labels: end (our format's default) or start "
                   "(e.g. Open Power System Data); required with --columns.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def run(keys: tuple[Path, ...], sources: tuple[str, ...], meter_ids: tuple[str, ...], rpc: str, spool_path: Path | None,
        interval_s: int | None, clock_spec: str, poll_s: float, batch_size: int, max_in_flight: int,
        units: str, columns_spec: str | None, label: str | None, log_level: str) -> None:
    """Read, sign, spool and submit readings for one or many meters until stopped; forward field
    meters' own signed records the same way."""
    from meters.gateway import Gateway, GatewayMeter, summary_line  # noqa: PLC0415
    from meters.record_sources import is_record_source  # noqa: PLC0415
    from meters.spool import Spool  # noqa: PLC0415
    from meters.submitter import ChainMismatch  # noqa: PLC0415
    urls = _urls(rpc)
    record_specs = [s for s in sources if is_record_source(s)]
    sources = tuple(s for s in sources if not is_record_source(s))
    if sources and not keys:
        _fail(f"--source {sources[0]}: not a field meter's records (ocmf:, sml:, dlms:), and no --key is given "
              "for a register source (csv:, simulated)")
    if not keys and not record_specs:
        _fail("give --key FILE for gridchain's own meters, or --source ocmf:|sml:|dlms:PATH with --meter-id HEX "
              "for a field meter")
    field = _field_meters(record_specs, meter_ids)
    if keys and not sources:
        sources = ("simulated",)
    if len(sources) not in (0, 1, len(keys)):
        _fail(f"give --source once for all meters or once per --key ({len(keys)}), not {len(sources)} times")
    keypairs = []
    for path in keys:
        try:
            keypairs.append(load_key_file(path))
        except KeyFileError as e:
            _fail(str(e))
    specs = list(sources) * len(keys) if len(sources) == 1 else list(sources)
    if len(keys) > 1 and len(sources) == 1 and specs[0].startswith("csv:"):
        _fail("each meter needs its own CSV file: give --source csv:PATH once per --key")
    if (units != "Wh" or columns_spec or label) and not any(s.strip().startswith("csv:") for s in specs):
        _fail("--units, --columns and --label say how a CSV file is read: give a --source csv:PATH")
    meters: list[Any] = []
    for i, (kp, spec) in enumerate(zip(keypairs, specs)):
        try:
            columns = parse_columns(columns_spec) if columns_spec is not None else None
            meters.append(GatewayMeter(kp, parse_source(spec, position=i, columns=columns, units=units,
                                                        label=label)))
        except SourceError as e:
            _fail(str(e))
    meters += field
    clock = _clock(clock_spec)
    if spool_path is None and not keys:
        first = field[0].source.path.resolve()       # beside the records: a directory's parent
        spool_path = first.parent / DEFAULT_SPOOL_NAME
    path = spool_path or keys[0].resolve().parent / DEFAULT_SPOOL_NAME
    try:
        spool = Spool.open(path)
    except SpoolError as e:
        _fail(str(e))
    _setup_logging(log_level)
    for p in keys:
        if loose_permissions(p):
            log.warning("key file %s is readable by other users; chmod 600 it", p)
    try:
        gateway = Gateway(meters, spool, urls, clock=clock, interval_s_option=interval_s, poll_s=poll_s,
                          batch_size=batch_size, max_in_flight=max_in_flight)
    except ValueError as e:
        spool.close()
        _fail(str(e))
    log.info("gateway for %d meter(s), spool %s, RPC %s", len(meters), path, ", ".join(urls))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await gateway.run(stop)

    try:
        asyncio.run(main())
    except (SpoolError, ChainMismatch, SourceError) as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - one line, never a traceback (details at --log-level debug)
        log.debug("gateway stopped", exc_info=True)
        _fail(f"gateway stopped on an unexpected error: {type(e).__name__}: {e}")
    finally:
        spool.close()
    s = gateway.summary()
    loud = (s["implausible"] or s["intervalsMissedCoarse"] or s["emptyRows"] or s["recordsSkipped"]
            or s["recordsTooLate"])
    log.log(logging.WARNING if loud else logging.INFO, "stopped: %s", summary_line(s))


# ---------------------------------------------------------------------------------------------
# spool
# ---------------------------------------------------------------------------------------------

def _iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@meter.command("spool")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--clear-rejected", is_flag=True,
              help="Delete the rejected readings after listing them (needs the gateway stopped).")
def spool_cmd(file: Path, as_json: bool, clear_rejected: bool) -> None:
    """List a spool's meters and its pending and rejected readings."""
    from meters.spool import Spool  # noqa: PLC0415
    try:
        sp = Spool.open(file, readonly=not clear_rejected, create=False)
    except SpoolError as e:
        _fail(str(e))
    try:
        chain = sp.chain()
        meters = sp.meters()
        readings = sp.readings()
        counts = sp.counts()
        cleared = sp.clear_rejected() if clear_rejected else None
    except SpoolError as e:
        _fail(str(e))
    finally:
        sp.close()
    interval_s = None if chain is None else chain["intervalS"]
    if as_json:
        out: dict[str, Any] = {
            "file": str(file), "counts": counts,
            "chain": None if chain is None else {**chain, "genesisHash": "0x" + chain["genesisHash"].hex()},
            "meters": [{"meter": "0x" + m.meter.hex(), "scheme": m.scheme, "nextSeq": m.next_seq,
                        "lastInterval": m.last_interval,
                        "importWh": m.last_import_wh, "exportWh": m.last_export_wh, "finalised": m.finalised,
                        "lastFinalisedSeq": m.last_finalised_seq, "rejected": m.rejected, "source": m.source,
                        "warning": coarse_note(m.source, interval_s)}
                       for m in meters.values()],
            "readings": [{"meter": "0x" + r.meter.hex(), "seq": r.seq, "intervalStart": r.interval_start,
                          "importWh": r.import_wh, "exportWh": r.export_wh, "state": r.state, "reason": r.reason,
                          "attempts": r.attempts, "lastError": r.last_error} for r in readings]}
        if cleared is not None:
            out["cleared"] = cleared
        click.echo(json.dumps(out, indent=2))
        return
    genesis = "not yet bound to a chain" if chain is None else f"chain 0x{chain['genesisHash'].hex()}"
    click.echo(f"{file}: {genesis}; {counts['meters']} meters, {counts['pending']} pending, "
               f"{counts['rejected']} rejected, {counts['finalised']} final (removed)")
    for m in meters.values():
        click.echo(f"  meter 0x{m.meter.hex()} ({m.scheme}): next seq {m.next_seq}, last interval "
                   f"{'-' if m.last_interval is None else _iso(m.last_interval)}, registers {m.last_import_wh}/"
                   f"{m.last_export_wh} Wh, {m.finalised} final, {m.rejected} rejected")
        note = coarse_note(m.source, interval_s)
        if note is not None:
            click.echo(f"    {note}")
    if readings:
        click.echo(f"  {'meter':<18} {'seq':>6} {'interval start':<20} {'import Wh':>10} {'export Wh':>10} "
                   f"{'state':<8} {'tries':>5}  reason")
    for r in readings:
        reason = r.reason or (f"(last error: {r.last_error})" if r.last_error else "")
        click.echo(f"  0x{r.meter.hex()[:16]} {r.seq:>6} {_iso(r.interval_start):<20} {r.import_wh:>10} "
                   f"{r.export_wh:>10} {r.state:<8} {r.attempts:>5}  {reason}")
    if cleared is not None:
        click.echo(f"cleared {cleared} rejected readings")


# ---------------------------------------------------------------------------------------------
# verify (a field meter's signed record, offline: meters/verify.py)
# ---------------------------------------------------------------------------------------------

from meters.verify import verify_cmd  # noqa: E402

meter.add_command(verify_cmd)
