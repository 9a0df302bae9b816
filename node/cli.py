"""The `gridchain` command, in Substrate's conventions (`--dev`, `run`, `key`, `build-spec`, ...).

Every command fails with one clear line on stderr and a non-zero exit on bad input.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import struct as _struct
import sys
from pathlib import Path

import click

from genesis.chain_spec import ChainSpecError, load_spec, to_raw
from primitives import ss58
from primitives.keys import InvalidSecret, Keypair, secret_seed_from_uri
from primitives.ss58 import AddressError

DEFAULT_RPC_PORT = 9944
DEFAULT_P2P_PORT = 30333
DEFAULT_PROMETHEUS_PORT = 9615


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _spec(chain: str) -> dict:
    try:
        return load_spec(chain)
    except ChainSpecError as e:
        _fail(str(e))


def _default_base() -> Path:
    return Path.home() / ".local" / "share" / "gridchain"


# ---------------------------------------------------------------------------------------------
# node
# ---------------------------------------------------------------------------------------------

async def _run_node(config, rpc_host: str, rpc_port: int, rpc_methods: str, rate_limit: int | None,
                    cors: str | None, app: bool = True) -> None:
    from node.service import NodeService  # noqa: PLC0415 - keeps `key`/`build-spec` start-up light
    from rpc.app_files import default_app_dir  # noqa: PLC0415
    from rpc.server import RpcServer  # noqa: PLC0415
    node = NodeService(config)
    extra = {}
    if cors is not None:
        extra["cors"] = "all" if cors.strip() == "all" else [o.strip() for o in cors.split(",") if o.strip()]
    if app:
        extra["app_dir"] = default_app_dir()
    server = RpcServer(node, host=rpc_host, port=rpc_port, rpc_methods_unsafe=rpc_methods,
                       rate_limit_per_second=rate_limit, **extra)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node.on_fatal = stop.set          # repeated storage errors, or a runtime version this release
    #                                   lacks, stop the node like a signal...
    node.metrics.watch_rpc_server(server)
    try:
        await node.start()
        await server.start()
        c = node.chain
        logging.getLogger("gridchain").info(
            "gridchain %s: chain %r, genesis 0x%s, best #%d, base path %s, RPC on %s:%d",
            "0.1.0", config.spec["name"], c.genesis_hash.hex(), c.best_number, node.base_path, rpc_host,
            server.port)
        print(f"RPC listening on ws://{rpc_host}:{server.port} and http://{rpc_host}:{server.port}", flush=True)
        if app:   # on all interfaces, this machine's own address opens it (same origin as its RPC)
            shown = "127.0.0.1" if rpc_host == "0.0.0.0" else rpc_host
            print(f"web app: http://{shown}:{server.port}/app/", flush=True)
        if node.host is not None:
            for addr in node.host.listen_addrs:
                print(f"p2p listening on {addr}", flush=True)
        await stop.wait()
    finally:
        await server.stop()
        await node.stop()
    if node.fatal_error is not None:
        raise node.fatal_error        # ...and end it with their one line and a non-zero exit


def _parse_pruning(pruning: str) -> int | None:
    if pruning == "archive":
        return None
    try:
        keep = int(pruning)
    except ValueError:
        _fail("--pruning takes 'archive' or a number of recent states to keep")
    if keep < 2:
        _fail("--pruning must keep at least 2 states")
    return keep


def _spec_block_time_ms(spec: dict) -> int:
    """The chain spec's `consensus.blockTimeMs` (1000 when absent); a bad value is one clear line."""
    value = spec.get("consensus", {}).get("blockTimeMs", 1000)
    if type(value) is not int or value < 0:
        _fail(f"chain spec: consensus.blockTimeMs must be a whole number of milliseconds >= 0, got {value!r}")
    return value


def _start(chain: str, base_path: Path | None, author: str | None, block_time_ms: int | None, rpc_port: int,
           rpc_external: bool, rpc_methods: str, pruning: str, rate_limit: int | None, cors: str | None,
           time_warp: int, dev: bool, network: dict | None = None, app: bool = True) -> None:
    from node.service import NodeConfig  # noqa: PLC0415
    keep = _parse_pruning(pruning)
    if author:
        try:
            secret_seed_from_uri(author)
        except InvalidSecret as e:
            _fail(f"bad authoring key: {e}")
    if base_path is None and not dev:
        base_path = _default_base()
    spec = _spec(chain)
    if block_time_ms is None:           # a deployment's block time travels with its chain spec
        block_time_ms = _spec_block_time_ms(spec)
    # the spec is loaded here and owned by the config alone: the node drops its genesis section
    config = NodeConfig(spec=spec, base_path=base_path, author_uri=author, block_time_ms=block_time_ms,
                        dev_finality=True, keep_states=keep, time_warp=time_warp, **(network or {}))
    if time_warp != 1 and config.spec.get("consensus", {}).get("timeWarp") is not None:
        _fail("--time-warp cannot be used with a chain spec that sets its own clock (consensus.timeWarp)")
    if config.engine == "bft" and time_warp != 1:
        _fail("--time-warp is for single-node dev chains: validators refuse blocks from the future")
    host = "0.0.0.0" if rpc_external else "127.0.0.1"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from node.db import DatabaseError  # noqa: PLC0415
    from node.state_db import StateDBError  # noqa: PLC0415
    from consensus.wal import WALCorrupted, WALLocked  # noqa: PLC0415
    from node.chain import UnknownRuntimeVersionError  # noqa: PLC0415
    try:
        asyncio.run(_run_node(config, host, rpc_port, rpc_methods, rate_limit, cors, app))
    except UnknownRuntimeVersionError as e:   # the node stopped before the block it cannot run
        _fail(str(e))
    except DatabaseError as e:    # first: a StorageError is an OSError too, and says all in its line
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot start the node: {e}")
    except (ValueError, DatabaseError, StateDBError, ChainSpecError, WALLocked) as e:
        _fail(str(e))
    except WALCorrupted as e:
        _fail(f"the consensus write-ahead log is damaged ({e}); see docs/operations.md, Recovery")


_node_options = [
    click.option("--base-path", type=click.Path(path_type=Path), help="Where the chain database lives."),
    click.option("--rpc-port", type=click.IntRange(0, 65535), default=DEFAULT_RPC_PORT, show_default=True),
    click.option("--rpc-external", is_flag=True, help="Listen for RPC on all interfaces (default: loopback)."),
    click.option("--rpc-methods", type=click.Choice(["auto", "safe", "unsafe"]), default="auto", show_default=True,
                 help="auto: unsafe methods only when RPC listens on loopback."),
    click.option("--rpc-cors", default=None,
                 help="Comma-separated browser origins allowed (default: localhost pages), or 'all'."),
    click.option("--no-app", is_flag=True,
                 help="Do not serve the web app at /app/ on the RPC port (JSON-RPC only)."),
    click.option("--rpc-rate-limit", type=click.IntRange(0, None), default=None,
                 help="Calls per second per client address (default: none on loopback, 100 with "
                      "--rpc-external; 0 turns it off)."),
    click.option("--block-time-ms", type=click.IntRange(0, None), default=None,
                 help="Block interval; 0 = instant seal (a block whenever transactions arrive). "
                      "Default: the chain spec's consensus.blockTimeMs, else 1000."),
    click.option("--pruning", default="256", show_default=True,
                 help="Recent states to keep, or 'archive' to keep all."),
    click.option("--time-warp", type=click.IntRange(1, 10_000), default=1, show_default=True,
                 help="Dev chains: chain time runs this many times faster (a simulated day in minutes)."),
]


def node_options(fn):
    for opt in reversed(_node_options):
        fn = opt(fn)
    return fn


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dev", is_flag=True, help="Run a single-node development chain (temporary, pre-funded dev accounts).")
@node_options
@click.pass_context
def main(ctx: click.Context, dev: bool, base_path: Path | None, rpc_port: int, rpc_external: bool,
         rpc_methods: str, rpc_cors: str | None, no_app: bool, rpc_rate_limit: int | None,
         block_time_ms: int | None, pruning: str, time_warp: int) -> None:
    """gridchain: a blockchain node for peer-to-peer energy trading."""
    if ctx.invoked_subcommand is not None:
        return
    if not dev:
        click.echo(ctx.get_help())
        return
    _start("dev", base_path, "//Alice", block_time_ms, rpc_port, rpc_external, rpc_methods, pruning,
           rpc_rate_limit, rpc_cors, time_warp, dev=True, app=not no_app)


@main.command()
@click.option("--chain", default="dev", show_default=True, help="Preset (dev, local) or chain spec file.")
@click.option("--validator", is_flag=True, help="Author blocks (needs --key).")
@click.option("--key", "key_uri", help="Secret URI of the authoring key, e.g. '//Alice' or a mnemonic.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_P2P_PORT, show_default=True,
              help="p2p (libp2p TCP) port of a BFT network.")
@click.option("--listen-addr", default="0.0.0.0", show_default=True, help="p2p listen address (IPv4).")
@click.option("--bootnodes", multiple=True,
              help="Peers to keep connected, /ip4/<ip>/tcp/<port>/p2p/<peer id> (repeat or comma-separate); "
                   "added to the chain spec's bootNodes.")
@click.option("--prometheus-port", type=click.IntRange(0, 65535), default=DEFAULT_PROMETHEUS_PORT,
              show_default=True, help="Prometheus metrics port.")
@click.option("--prometheus-external", is_flag=True, help="Serve metrics on all interfaces (default: loopback).")
@click.option("--no-prometheus", is_flag=True, help="Do not serve metrics.")
@node_options
def run(chain: str, validator: bool, key_uri: str | None, port: int, listen_addr: str, bootnodes: tuple,
        prometheus_port: int, prometheus_external: bool, no_prometheus: bool, base_path: Path | None,
        rpc_port: int, rpc_external: bool, rpc_methods: str, rpc_cors: str | None, no_app: bool,
        rpc_rate_limit: int | None, block_time_ms: int | None, pruning: str, time_warp: int) -> None:
    """Run a node on a chain: a BFT validator (--validator --key) or a follower."""
    _spec(chain)  # fail early, with one line, on an unknown chain
    if validator and not key_uri:
        _fail("--validator needs --key (the validator key's secret URI)")
    boots = tuple(b.strip() for item in bootnodes for b in item.split(",") if b.strip())
    from p2p.topics import parse_peer_addr  # noqa: PLC0415
    for b in boots:
        try:
            parse_peer_addr(b)
        except ValueError as e:
            _fail(str(e))
    network = {"p2p_listen": f"/ip4/{listen_addr}/tcp/{port}", "bootnodes": boots,
               "prometheus_port": None if no_prometheus else prometheus_port,
               "prometheus_external": prometheus_external}
    _start(chain, base_path, key_uri if validator else None, block_time_ms, rpc_port, rpc_external, rpc_methods,
           pruning, rpc_rate_limit, rpc_cors, time_warp, dev=False, network=network, app=not no_app)


@main.command()
@click.option("--validators", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--base-dir", type=click.Path(path_type=Path), default=Path("testnet"), show_default=True,
              help="Holds the chain spec and one base path per node (kept across runs).")
@click.option("--rpc-port-base", type=click.IntRange(1, 65535), default=DEFAULT_RPC_PORT, show_default=True)
@click.option("--p2p-port-base", type=click.IntRange(1, 65535), default=DEFAULT_P2P_PORT, show_default=True)
@click.option("--prometheus-port-base", type=click.IntRange(1, 65535), default=DEFAULT_PROMETHEUS_PORT,
              show_default=True)
@click.option("--no-app", is_flag=True, help="The nodes do not serve the web app at /app/.")
def testnet(validators: int, base_dir: Path, rpc_port_base: int, p2p_port_base: int,
            prometheus_port_base: int, no_app: bool) -> None:
    """Start N validators on loopback (node i: RPC on rpc-port-base + i); Ctrl-C stops them all."""
    from node import testnet as tn  # noqa: PLC0415
    sys.exit(tn.run(validators, base_dir, rpc_port_base, p2p_port_base, prometheus_port_base,
                    echo=lambda m: click.echo(m), app=not no_app))


@main.command()
@click.option("--households", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Simulated households, each with a licence, a meter and a standing-order strategy.")
@click.option("--validators", type=click.IntRange(1, 16), default=4, show_default=True)
@click.option("--speed", type=click.IntRange(1, 2_000), default=360, show_default=True,
              help="How many times faster than real time the chain's clock runs through the simulated day.")
@click.option("--hours", type=click.IntRange(1, 48), default=24, show_default=True, help="Simulated hours.")
@click.option("--base-dir", type=click.Path(path_type=Path), default=None,
              help="Keep the chain, logs and meter spool here (default: a temporary directory).")
@click.option("--keep", is_flag=True, help="Leave the network up after the day (RPC on --rpc-port-base) until Ctrl-C.")
@click.option("--rpc-port-base", type=click.IntRange(1, 65535), default=DEFAULT_RPC_PORT, show_default=True)
@click.option("--p2p-port-base", type=click.IntRange(1, 65535), default=DEFAULT_P2P_PORT, show_default=True)
@click.option("--prometheus-port-base", type=click.IntRange(1, 65535), default=DEFAULT_PROMETHEUS_PORT,
              show_default=True)
@click.option("--seed", type=int, default=2011, show_default=True, help="Seed of the neighbourhood's households.")
@click.option("--start-hour", type=click.IntRange(0, 23), default=0, show_default=True,
              help="Chain-time hour (UTC) the simulated day starts at, e.g. 10 for a short sunny run.")
def demo(households: int, validators: int, speed: int, hours: int, base_dir: Path | None, keep: bool,
         rpc_port_base: int, p2p_port_base: int, prometheus_port_base: int, seed: int, start_hour: int) -> None:
    """A neighbourhood trading energy for a simulated day over a local BFT network, then a summary."""
    from node import demo as demo_mod  # noqa: PLC0415
    try:
        status = demo_mod.run(households, validators, speed, hours, base_dir, keep, rpc_port_base, p2p_port_base,
                              prometheus_port_base, seed, start_hour, echo=lambda m: click.echo(m))
    except demo_mod.DemoError as e:
        _fail(str(e))
    sys.exit(status)


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

@main.group()
def key() -> None:
    """Generate and inspect ed25519 keys (Substrate-compatible)."""


def _key_fields(kp: Keypair, phrase: str | None, seed: bytes) -> dict:
    out = {}
    if phrase is not None:
        out["secretPhrase"] = phrase
    out.update({
        "networkId": "gridchain",
        "secretSeed": "0x" + seed.hex(),
        "publicKey": "0x" + kp.public_key.hex(),
        "ss58PublicKey": kp.address(),
        "accountId": "0x" + kp.public_key.hex(),
        "ss58Address": kp.address(),
    })
    return out


def _print_key(fields: dict, output_type: str) -> None:
    if output_type == "json":
        click.echo(json.dumps(fields, indent=2))
        return
    labels = [("secretPhrase", "Secret phrase"), ("networkId", "Network ID"), ("secretSeed", "Secret seed"),
              ("publicKey", "Public key (hex)"), ("accountId", "Account ID"), ("ss58Address", "SS58 Address")]
    for k, label in labels:
        if k in fields:
            click.echo(f"{label + ':':<19}{fields[k]}")


@key.command()
@click.option("--output-type", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--words", type=click.Choice(["12", "24"]), default="12", show_default=True)
def generate(output_type: str, words: str) -> None:
    """Generate a new key from a fresh BIP39 mnemonic."""
    from mnemonic import Mnemonic  # noqa: PLC0415
    phrase = Mnemonic("english").generate(strength=128 if words == "12" else 256)
    seed = secret_seed_from_uri(phrase)
    _print_key(_key_fields(Keypair.from_seed(seed), phrase, seed), output_type)


@key.command()
@click.argument("uri")
@click.option("--output-type", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--public", is_flag=True, help="URI is an SS58 address or hex public key.")
def inspect(uri: str, output_type: str, public: bool) -> None:
    """Show the keys of a secret URI (mnemonic, 0x seed, //Dev path) or of a public address."""
    if public or (not uri.startswith("//") and " " not in uri.strip() and not uri.startswith("0x")):
        try:
            pk = bytes.fromhex(uri[2:]) if uri.startswith("0x") else ss58.decode_with_prefix(uri)[0]
        except (AddressError, ValueError) as e:
            _fail(f"not an address or public key: {e}")
        if len(pk) != 32:
            _fail("a public key is 32 bytes")
        fields = {"networkId": "gridchain", "publicKey": "0x" + pk.hex(), "accountId": "0x" + pk.hex(),
                  "ss58Address": ss58.encode(pk)}
        _print_key(fields, output_type)
        return
    try:
        seed = secret_seed_from_uri(uri)
    except InvalidSecret as e:
        _fail(str(e))
    phrase = uri if " " in uri.strip() else None
    _print_key(_key_fields(Keypair.from_seed(seed), phrase, seed), output_type)


@key.command("validator")
@click.argument("uri")
def key_validator(uri: str) -> None:
    """Show what governance needs to add a validator: its account and the BLS key (with proof of
    possession) derived from the same secret, as a validators genesis entry / add_validator arguments."""
    from primitives import bls  # noqa: PLC0415
    try:
        kp = Keypair.from_seed(secret_seed_from_uri(uri))
    except InvalidSecret as e:
        _fail(str(e))
    sk = bls.secret_from_seed(kp.seed)
    click.echo(json.dumps({"account": kp.address(), "accountId": "0x" + kp.public_key.hex(),
                           "bls_public_key": "0x" + bls.sk_to_pk(sk).hex(),
                           "bls_proof_of_possession": "0x" + bls.pop_prove(sk).hex()}, indent=2))


@key.command("generate-node-key")
@click.option("--base-path", type=click.Path(path_type=Path), required=True,
              help="The base path the node will run with (`run --base-path`); the key goes to network/secret_ed25519.")
def generate_node_key(base_path: Path) -> None:
    """Create a node's network key (its p2p identity) before its first start, and print its peer id,
    so bootnode addresses (/ip4/<ip>/tcp/<port>/p2p/<peer id>) can be written down beforehand. A key
    already there is kept: its peer id is printed again."""
    from p2p.keys import NodeKeyError, load_or_create_node_key, node_key_path, peer_id_of  # noqa: PLC0415
    existed = node_key_path(base_path).exists()
    try:
        pair = load_or_create_node_key(base_path)
    except (NodeKeyError, OSError) as e:
        _fail(f"cannot create the node key: {e}")
    if existed:
        click.echo(f"{node_key_path(base_path)} already exists; its peer id:", err=True)
    click.echo(peer_id_of(pair))


# ---------------------------------------------------------------------------------------------
# chain specs and the database
# ---------------------------------------------------------------------------------------------

@main.command("build-spec")
@click.option("--chain", default=None, help="Preset (dev, local) or chain spec file.  [default: dev]")
@click.option("--from", "deployment", type=click.Path(path_type=Path), default=None,
              help="A deployment file (TOML, see genesis/examples/deployment.toml) to build the spec from.")
@click.option("--raw", is_flag=True, help="Genesis as raw storage (what nodes hash).")
def build_spec(chain: str | None, deployment: Path | None, raw: bool) -> None:
    """Print a chain spec as JSON: of a chain (--chain), or built from a deployment file (--from)."""
    if deployment is not None:
        if chain is not None:
            _fail("--from and --chain are exclusive: a spec is built from a deployment file or from a chain, not both")
        from genesis.deployment import DeploymentError, spec_from_file  # noqa: PLC0415
        try:
            spec = spec_from_file(deployment)
        except DeploymentError as e:
            _fail(str(e))
    else:
        spec = _spec(chain or "dev")
    if raw:
        from pallets import build_runtime  # noqa: PLC0415
        try:
            spec = to_raw(spec, build_runtime())
        except ChainSpecError as e:
            _fail(str(e))
    click.echo(json.dumps(spec, indent=2))


def _chain_dir(spec: dict, base_path: Path) -> Path:
    """A chain's folder under a base path; its LevelDB sits in `db/` inside."""
    return base_path / "chains" / spec["id"]


@main.command("purge-chain")
@click.option("--chain", default="dev", show_default=True)
@click.option("--base-path", type=click.Path(path_type=Path), required=True)
@click.option("-y", "yes", is_flag=True, help="Do not ask for confirmation.")
def purge_chain(chain: str, base_path: Path, yes: bool) -> None:
    """Delete a chain's database."""
    path = _chain_dir(_spec(chain), base_path) / "db"
    if not path.exists():
        _fail(f"{path} does not exist")
    if not yes and not click.confirm(f"Delete {path}?"):
        _fail("aborted")
    shutil.rmtree(path)
    click.echo(f"{path} removed")


def _open_chain(spec: dict, base_path: Path, *, create: bool, pruning: str = "256"):
    """Open a chain database offline, in the pruning mode it was created with (a new one gets
    `pruning`)."""
    from genesis.chain_spec import genesis_storage  # noqa: PLC0415
    from node.chain import Chain  # noqa: PLC0415
    from node.db import META_STATE_MODE, Database, DatabaseError  # noqa: PLC0415
    from node.state_db import MODE_ARCHIVE, StateDBError  # noqa: PLC0415
    path = _chain_dir(spec, base_path)
    try:
        db = Database.open(path, create=create)
    except DatabaseError as e:
        _fail(str(e))
    mode = db.get(b"m/", META_STATE_MODE)
    if mode is None:
        keep = _parse_pruning(pruning)
    else:
        keep = None if mode == MODE_ARCHIVE else 256
    try:
        return Chain(db, lambda rt: genesis_storage(spec, rt), keep_states=keep)
    except (ValueError, StateDBError, ChainSpecError) as e:
        db.close()
        _fail(str(e))


@main.command("export-blocks")
@click.option("--chain", default="dev", show_default=True)
@click.option("--base-path", type=click.Path(path_type=Path), required=True)
@click.option("--from", "start", type=click.IntRange(1, None), default=1, show_default=True)
@click.option("--to", "end", type=click.IntRange(1, None), default=None)
@click.argument("output", type=click.File("wb"))
def export_blocks(chain: str, base_path: Path, start: int, end: int | None, output) -> None:
    """Write blocks to a file: each a 4-byte big-endian length and an encoded SignedBlock."""
    c = _open_chain(_spec(chain), base_path, create=False)
    try:
        last = c.best_number if end is None else min(end, c.best_number)
        n = 0
        for number in range(start, last + 1):
            data = c.blocks.block(c.blocks.hash_at(number)).encode()
            output.write(_struct.pack(">I", len(data)) + data)
            n += 1
        click.echo(f"exported {n} blocks ({start}..{last})", err=True)
    finally:
        c.db.close()


@main.command("import-blocks")
@click.option("--chain", default="dev", show_default=True)
@click.option("--base-path", type=click.Path(path_type=Path), required=True)
@click.option("--pruning", default="256", show_default=True,
              help="For a new database: recent states to keep, or 'archive'.")
@click.argument("input_file", type=click.File("rb"))
def import_blocks(chain: str, base_path: Path, pruning: str, input_file) -> None:
    """Verify and import blocks written by export-blocks (blocks already present are skipped)."""
    from node.chain import ImportError_  # noqa: PLC0415
    from primitives.codec import CodecError  # noqa: PLC0415
    from primitives.types import SignedBlock  # noqa: PLC0415
    c = _open_chain(_spec(chain), base_path, create=True, pruning=pruning)
    imported = skipped = 0
    try:
        while True:
            head = input_file.read(4)
            if not head:
                break
            if len(head) < 4:
                _fail("truncated file: incomplete length prefix")
            (length,) = _struct.unpack(">I", head)
            data = input_file.read(length)
            if len(data) != length:
                _fail("truncated file: incomplete block")
            try:
                signed = SignedBlock.decode(data)
            except CodecError as e:
                _fail(f"block {imported + skipped + 1} in the file is malformed: {e}")
            number = signed.block.header.number
            if number <= c.best_number:
                if c.blocks.hash_at(number) != signed.block.header.hash():
                    _fail(f"block #{number} in the file conflicts with the chain in the database")
                skipped += 1
                continue
            try:
                c.import_block(signed, finalize=True, check_drift=False)
            except ImportError_ as e:
                _fail(f"block #{number} refused: {e}")
            imported += 1
        click.echo(f"imported {imported} blocks, skipped {skipped} already present; best is #{c.best_number}")
    finally:
        c.db.close()


# ---------------------------------------------------------------------------------------------
# wallet basics
# ---------------------------------------------------------------------------------------------

def _client(url: str):
    from rpc.client import Client  # noqa: PLC0415
    return Client(url)


@contextlib.contextmanager
def _rpc_errors(url: str, what: str):
    """Turn what can go wrong talking to a node into one line and a non-zero exit."""
    from rpc.client import RpcError  # noqa: PLC0415
    try:
        yield
    except RpcError as e:
        _fail(f"{what}: {e}")
    except (OSError, asyncio.TimeoutError) as e:
        _fail(f"cannot reach the node at {url}: {e}")
    except ValueError as e:
        _fail(str(e))


def _account(text: str) -> bytes:
    try:
        if text.startswith("0x"):
            pk = bytes.fromhex(text[2:])
            if len(pk) != 32:
                raise ValueError("a public key is 32 bytes")
            return pk
        if text.startswith("//"):
            return Keypair.from_uri(text).public_key
        return ss58.decode_with_prefix(text)[0]
    except (AddressError, ValueError, InvalidSecret) as e:
        _fail(f"not an account: {text!r} ({e})")


@main.group()
def tx() -> None:
    """Sign and submit transactions."""


@tx.command()
@click.option("--from", "sender", required=True, help="Secret URI of the sender, e.g. //Alice or a mnemonic.")
@click.option("--to", "dest", required=True, help="SS58 address (or 0x public key, or //Dev name).")
@click.option("--amount", type=click.IntRange(1, 2**64 - 1), required=True, help="In the smallest unit.")
@click.option("--asset", type=click.IntRange(0, None), default=None, help="Asset id (e.g. 1 = stablecoin); default native.")
@click.option("--tip", type=click.IntRange(0, None), default=0)
@click.option("--rpc", "url", default=f"ws://127.0.0.1:{DEFAULT_RPC_PORT}", show_default=True)
@click.option("--wait", type=click.Choice(["none", "inBlock", "finalized"]), default="finalized", show_default=True)
def transfer(sender: str, dest: str, amount: int, asset: int | None, tip: int, url: str, wait: str) -> None:
    """Transfer native tokens or an asset."""
    try:
        kp = Keypair.from_uri(sender)
    except InvalidSecret as e:
        _fail(f"bad sender key: {e}")
    to = _account(dest)
    with _rpc_errors(url, "rejected"), _client(url) as c:
        if asset is None:
            xt = c.build_extrinsic(kp, "balances", "transfer", [to, amount], tip=tip)
        else:
            xt = c.build_extrinsic(kp, "balances", "transfer_asset", [asset, to, amount], tip=tip)
        if wait == "none":
            click.echo("0x" + c.submit(xt).hex())
            return
        r = c.submit_and_watch(xt, until=wait)
    where = f"block 0x{r.block_hash.hex()} (extrinsic 0x{r.hash.hex()})"
    if r.success is False:
        _fail(f"failed in {where}: {r.error}; the fee was paid")
    click.echo(f"{r.status} in {where}")


@main.group()
def query() -> None:
    """Read chain state."""


@query.command()
@click.argument("account")
@click.option("--asset", type=click.IntRange(0, None), default=None)
@click.option("--rpc", "url", default=f"ws://127.0.0.1:{DEFAULT_RPC_PORT}", show_default=True)
def balance(account: str, asset: int | None, url: str) -> None:
    """Show an account's balance (native, or of an asset)."""
    from primitives.codec import U64  # noqa: PLC0415
    from pallets import balances, system  # noqa: PLC0415 - storage key derivation only
    who = _account(account)
    with _rpc_errors(url, "query failed"), _client(url) as c:
        if asset is None:
            raw = c.get_storage(system.account.key_of(who))
            info = system.AccountInfo.decode(raw) if raw else system.EMPTY_ACCOUNT
            click.echo(json.dumps({"account": ss58.encode(who), "free": info.free, "reserved": info.reserved,
                                   "nonce": info.nonce}))
        else:
            raw = c.get_storage(balances.asset_balance.key_of(asset, who))
            click.echo(json.dumps({"account": ss58.encode(who), "asset": asset,
                                   "balance": U64.decode(raw) if raw else 0}))


@main.group()
def report() -> None:
    """Reports for regulators and DSOs."""


REPORT_COLUMNS = ["tradeId", "intervalStart", "seller", "buyer", "fromZone", "toZone", "wh", "pricePerKwh",
                  "feePerKwh", "amount", "feeAmount", "status", "deliveredWh", "paidSeller", "feeToDso",
                  "refundBuyer", "penalty", "atFault", "certificatesRetiredWh"]


@report.command("trades")
@click.option("--from", "start", type=click.IntRange(0, None), required=True, help="First interval start (unix s).")
@click.option("--to", "end", type=click.IntRange(0, None), required=True, help="Last interval start (unix s).")
@click.option("--rpc", "url", default=f"ws://127.0.0.1:{DEFAULT_RPC_PORT}", show_default=True)
@click.option("--output", type=click.File("w"), default="-", help="CSV file (default: standard output).")
@click.option("--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True,
              help="Trades asked for per RPC call; the report always holds every trade of the range.")
def report_trades(start: int, end: int, url: str, output, page_size: int) -> None:
    """Trades, grid fees and penalties of an interval range, as CSV (one row per trade), all read at
    one block."""
    import csv  # noqa: PLC0415
    with _rpc_errors(url, "report failed"), _client(url) as c:
        rows, at = c.request_all("energy_intervalTrades", {"fromInterval": start, "toInterval": end},
                                 page_size=page_size)
    writer = csv.writer(output)
    writer.writerow(REPORT_COLUMNS)
    for r in rows:
        o = r.get("outcome") or {}
        merged = {**r, **o}
        writer.writerow(["" if merged.get(k) is None else merged[k] for k in REPORT_COLUMNS])
    click.echo(f"{len(rows)} trades (state at block {at})", err=True)


@report.command("clearing")
@click.option("--from", "start", type=click.IntRange(0, None), required=True, help="First interval start (unix s).")
@click.option("--to", "end", type=click.IntRange(0, None), required=True, help="Last interval start (unix s).")
@click.option("--kind", type=click.Choice(["zones", "links"]), default="zones", show_default=True,
              help="zones: a row per zone (price, bought, sold, net import); links: a row per link direction "
                   "(flow, limit, congested, rent, DSO).")
@click.option("--rpc", "url", default=f"ws://127.0.0.1:{DEFAULT_RPC_PORT}", show_default=True)
@click.option("--output", type=click.File("w"), default="-", help="CSV file (default: standard output).")
def report_clearing(start: int, end: int, kind: str, url: str, output) -> None:
    """Coupled regions' zonal clearing over an interval range, as CSV, all read at one block."""
    import csv  # noqa: PLC0415
    from node import clearing_report  # noqa: PLC0415
    try:
        starts = clearing_report.intervals(start, end)
    except ValueError as e:
        _fail(str(e))
    with _rpc_errors(url, "report failed"), _client(url) as c:
        results, at = clearing_report.fetch(c, starts)
    rows = clearing_report.rows(results, kind)
    writer = csv.writer(output)
    writer.writerow(clearing_report.COLUMNS[kind])
    writer.writerows(rows)
    click.echo(clearing_report.summary(results, len(rows), kind, at), err=True)


# ---------------------------------------------------------------------------------------------
# clients: the household wallet and the meter gateway (outside clients of the node, over JSON-RPC)
# ---------------------------------------------------------------------------------------------

from meters.cli import meter as _meter_group  # noqa: E402
from wallet.cli import wallet as _wallet_group  # noqa: E402
from wallet.cli_admin import admin as _admin_group  # noqa: E402
from wallet.cli_admin import events as _events_command  # noqa: E402

main.add_command(_wallet_group)
main.add_command(_meter_group)
main.add_command(_admin_group)
main.add_command(_events_command)


def entry() -> None:
    """Console entry point: every error, usage errors included, is one line on stderr."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    entry()
