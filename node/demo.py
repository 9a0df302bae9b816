"""`gridchain demo`: a neighbourhood trading energy for a simulated day over a local BFT network.

What it does, in order:
1. Builds a neighbourhood of N households from the real data in meters/data (meters/simulator.py),
   and a chain spec for it: the local testnet's validators, registrar (Alice), DSO (Dave, two
   feeders with grid-fee tariffs) and stablecoin issuer (Eve), with every household licensed,
   metered (a certified meter key per home) and funded at genesis, as a chain launched for an
   existing neighbourhood would be. Most households have gridchain's own ed25519 meters; some have
   meters of kinds installed in the field (every 5th OCMF, every 7th DLMS, every 6th import-only one
   SML/EDL40; meters/simulator.py `meter_kind_for`), test meters certified at genesis through the
   field_meters config, whose own signed records the gateway forwards untouched. The spec carries
   an accelerated clock (primitives/chain_clock.py): `speed` times real time through the simulated
   day, normal speed afterwards.
   The two feeders are one coupled region of the market (`couple_feeders`): homes with rooftop PV
   are on feeder-north, homes without on feeder-south, and both clear together at each gate
   closure with a price per feeder. The link between them is rated (`size_link`) at LINK_SHARE of
   what the noon clearing would send south without a limit, worked out from the households' own
   standing-order plan (meters/strategy.py `standing_plan`) through the market's own solver: so at
   noon the link is congested and the feeders' prices part, whatever day of the data the run falls
   on. South's demand, not north's surplus, limits the flow through the middle of the day, so the
   link binds from mid-morning to mid-afternoon; in the early morning, evening and night (little
   or no surplus) nothing binds.
2. Starts the validators on loopback (node/testnet.py; node i serves RPC on rpc_port_base + i) and
   waits until they finalise blocks.
3. Runs the simulator as outside clients over JSON-RPC: every household's meter (the meter SDK's
   gateway, spooled on disk) and its standing-order strategy, with an hourly line and a progress
   line, then waits for the day's settlement and prints the summary. Beside them, from the start
   until the demo stops, the dev households' meters (//Bob//meter, //Charlie//meter,
   //Ferdie//meter, certified at genesis) report every interval through a gateway of their own
   (meters/dev_households.py), so that what a newcomer trades as //Bob in the web app settles
   against metered delivery; they are not in the day's summary, which is the neighbourhood's.
4. Stops every process it started, or with `keep` leaves the network, and the web app its first
   node serves at /app/ (rpc/app_files.py), up until Ctrl-C, the dev households' meters reporting
   at the chain's (then normal) speed.

Ctrl-C (or SIGTERM) at any point stops every validator it started, and nothing else.
"""
from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genesis.chain_spec import DEV_TARIFFS, Household, couple_feeders, neighbourhood_spec
from meters.dev_households import DEV_HOUSEHOLDS, dev_gateway
from meters.household import ATTRIBUTION
from meters.spool import SpoolError
from meters.submitter import ChainMismatch
from meters.strategy import BID, standing_plan
from meters.simulator import (
    HOUR_S,
    Simulator,
    build_households,
    format_hour,
    format_summary,
    simulated_gateway,
)
from node import testnet
from pallets import market_coupling
from primitives.chain_clock import ChainClock
from rpc.app_files import default_app_dir
from rpc.client import AsyncClient, RpcError

#: the demo's validators author an empty block at least this often (ms), so the accelerated clock
#: is sampled often enough for 15-minute intervals that last a few seconds
DEMO_BLOCK_TIME_MS = 500
#: wall seconds the network gets to start before the accelerated clock reaches the run-up
STARTUP_S = 12
#: chain time before the simulated day: standing orders are set an hour ahead, and the meters'
#: first (baseline) readings need an interval or two
RUN_UP_S = 5400
#: chain time after the day at accelerated speed: the last intervals' settlement windows close
TAIL_S = 2 * HOUR_S
#: the link between the feeders carries this share (numerator, denominator) of what the noon
#: clearing would send over it without a limit
LINK_SHARE = (4, 5)
#: a link rating when the run has no surplus to carry (a night run): generous, it never binds
IDLE_LINK_W = 100_000
#: feeder-north holds the homes with rooftop PV, feeder-south those without
NORTH, SOUTH = 1, 2


@dataclass(frozen=True)
class LinkSizing:
    """How the demo rated the link between its feeders."""

    link_w: int
    hour_start: int | None      # the hour it was sized for (noon, if the run covers it)
    flow_wh: int                # the least Wh an interval of that hour would send south, unlimited


def _local_fee(grid_config: dict, zone: int, t: int) -> int:
    """The zone's local grid fee per kWh at chain time t, from the spec's grid genesis config."""
    band = 0
    for start_s, b in sorted(grid_config["tou_bands"]):
        if t % 86_400 >= start_s:
            band = b
    return next(fee for a, b, bnd, fee in grid_config["tariffs"] if a == b == zone and bnd == band)


def unlimited_flows(sims: list, grid_config: dict, day_start: int, hours: int) -> dict[int, int]:
    """Interval start -> Wh the coupled clearing would send from feeder-north to feeder-south with no
    link limit, given the orders the households' standing-order plan posts (`standing_plan`)."""
    by_name = {h.name: h for h in sims}
    plan = standing_plan({h.name: (h.household, h.prosumer) for h in sims}, day_start, hours)
    flows = {}
    for t, posts in sorted(plan.items()):
        asks: dict[int, list] = {NORTH: [], SOUTH: []}
        bids: dict[int, list] = {NORTH: [], SOUTH: []}
        for n, (name, (side, wh)) in enumerate(sorted(posts.items())):
            h = by_name[name]
            price = h.prices.bid_per_kwh if side == BID else h.prices.ask_per_kwh
            (bids if side == BID else asks)[h.zone].append((price, n, h.account.public_key, wh, side != BID))
        books = [market_coupling.ZoneBook(z, asks[z], bids[z], _local_fee(grid_config, z, t), 10**12, 10**12)
                 for z in (NORTH, SOUTH)]
        result = market_coupling.clear(books, {(NORTH, SOUTH): 10**12, (SOUTH, NORTH): 10**12}, 10**7)
        flows[t] = sum(link.flow_wh for link in result.links if (link.from_zone, link.to_zone) == (NORTH, SOUTH))
    return flows


def size_link(sims: list, grid_config: dict, day_start: int, hours: int) -> LinkSizing:
    """Rate the link at LINK_SHARE of the least flow an interval of the noon hour would carry (or,
    for a run without noon, of the run's hour with the most), so that it binds there."""
    flows = unlimited_flows(sims, grid_config, day_start, hours)
    starts = [day_start + k * HOUR_S for k in range(hours)]
    least = {s: min(flows.get(s + q * 900, 0) for q in range(4)) for s in starts}
    noon = [s for s in starts if s % 86_400 == 12 * HOUR_S and least[s] > 0]
    hour = noon[0] if noon else max(starts, key=lambda s: (least[s], -s))
    if least[hour] <= 0:
        return LinkSizing(IDLE_LINK_W, None, 0)
    share_wh = least[hour] * LINK_SHARE[0] // LINK_SHARE[1]
    return LinkSizing(max(4, share_wh * HOUR_S // 900), hour, least[hour])


class DemoError(Exception):
    """The demo cannot go on; the message says why in one line."""


def demo_clock(speed: int, wall_now_s: float, day_start: int, hours: int) -> ChainClock:
    """The chain clock: at wall time now + STARTUP_S the chain is RUN_UP_S before `day_start`, and it
    runs `speed` times faster until TAIL_S after the day, then at normal speed."""
    return ChainClock(factor=speed, wall_start_ms=int((wall_now_s + STARTUP_S) * 1000),
                      chain_start_ms=(day_start - RUN_UP_S) * 1000,
                      until_chain_ms=(day_start + hours * HOUR_S + TAIL_S) * 1000)


async def _wait_ready(urls: list[str], procs: list, timeout_s: float = 60.0) -> None:
    """Every node answers RPC and the network has finalised a block."""
    deadline = time.monotonic() + timeout_s
    for url, p in zip(urls, procs):
        async with AsyncClient(url, timeout=5) as c:
            while True:
                if p.poll() is not None:
                    raise DemoError(f"a validator exited during start-up (status {p.returncode}); see its node.log")
                try:
                    await c.request("system_health")
                    break
                except (TimeoutError, RpcError, OSError):
                    if time.monotonic() > deadline:
                        raise DemoError(f"{url} did not answer within {timeout_s:.0f} s") from None
                    await asyncio.sleep(0.3)
    async with AsyncClient(urls[0], timeout=5) as c:
        while True:
            head = await c.request("chain_getFinalizedHead")
            header = await c.request("chain_getHeader", [head])
            if int(header["number"], 16) >= 1:
                return
            if time.monotonic() > deadline:
                raise DemoError("the validators did not finalise a block in time; see their node.log files")
            await asyncio.sleep(0.3)


class Progress:
    """One line redrawn in place on a terminal; plain lines now and then otherwise."""

    def __init__(self, echo: Callable[[str], None], tty: bool) -> None:
        self.echo, self.tty, self._last = echo, tty, ""
        self._plain_at = 0.0

    def tick(self, frac: float, text: str) -> None:
        width = 30
        filled = int(width * min(1.0, frac))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {frac:4.0%} {text}"
        if self.tty:
            sys.stdout.write("\r" + line.ljust(len(self._last)))
            sys.stdout.flush()
            self._last = line
        elif time.monotonic() - self._plain_at > 30:
            self._plain_at = time.monotonic()
            self.echo(line)

    def clear(self) -> None:
        """Erase the progress line (on a terminal) so that ordinary output follows cleanly."""
        if self.tty and self._last:
            sys.stdout.write("\r" + " " * len(self._last) + "\r")
            sys.stdout.flush()
            self._last = ""

    def line(self, text: str) -> None:
        self.clear()
        self.echo(text)


async def _simulate(urls: list[str], clock: ChainClock, households: list, day_start: int, hours: int,
                    spool: Path, progress: Progress) -> list[str]:
    gateway = simulated_gateway(households, urls, spool, clock, last_reading_at=day_start + hours * HOUR_S)
    sim = Simulator(urls, clock, households, day_start, hours, gateway=gateway,
                    on_hour=lambda r: progress.line(format_hour(r)), on_tick=progress.tick)
    summary = await sim.run()
    progress.clear()
    return format_summary(summary, DEV_TARIFFS["local"])


async def _dev_meters(urls: list[str], clock: ChainClock, spool: Path, stop: asyncio.Event,
                      progress: Progress) -> None:
    """The dev households' meters until `stop`; a fatal gateway error (a spool or chain mismatch)
    is said in one line and ends only them, not the demo."""
    try:
        await dev_gateway(urls, spool, clock.now_s).run(stop)
    except (ChainMismatch, SpoolError) as e:
        progress.line(f"the dev households' meters stopped: {e}")


async def _run_network(urls: list[str], clock: ChainClock, sims: list, day_start: int, hours: int, base: Path,
                       progress: Progress, echo: Callable[[str], None], keep: bool, rpc_port: int,
                       procs: list) -> int:
    """The simulated day and its summary, then with `keep` the network's life until Ctrl-C (or until
    every node has exited: status 1); the dev households' meters report throughout."""
    stop_dev = asyncio.Event()
    dev = asyncio.create_task(_dev_meters(urls, clock, base / "dev-meters.spool", stop_dev, progress))
    try:
        summary = await _simulate(urls, clock, sims, day_start, hours, base / "meters.spool", progress)
        echo("")
        echo("summary")
        for line in summary:
            echo("  " + line)
        echo(f"  ({ATTRIBUTION})")
        if not keep:
            return 0
        echo("")
        echo(f"the network stays up: RPC {urls[0]} (and {', '.join(urls[1:])}); chain time now runs at normal "
             f"speed, and the dev households' meters keep reporting each interval, so their trades settle "
             f"against metered delivery")
        echo(app_line(rpc_port))
        echo("Try the web app: import //Bob, see today's prices and his energy, and sell some of his surplus;")
        echo("  import //Charlie in a second window and buy it, then watch the trade settle; import //Dave,")
        echo("  the DSO, and pause a zone. Bob's meter follows real PV data: at night he has no surplus, and")
        echo("  energy sold but not delivered settles as a shortfall, with a penalty.")
        echo("Or from a terminal: gridchain wallet import bob --uri //Bob; gridchain wallet balance bob")
        echo("Ctrl-C stops every node.")
        while True:
            await asyncio.sleep(0.5)
            if all(p.poll() is not None for p in procs):
                echo("every node has exited")
                return 1
    finally:
        stop_dev.set()
        await dev


def _check_ports(ports: list[int]) -> None:
    """Refuse to start when a port the network needs is taken (an earlier demo or testnet, most
    likely), instead of leaving validators to fail one by one."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # as the nodes' listeners do: connections of an earlier run in TIME_WAIT do not count
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise DemoError(f"port {port} on 127.0.0.1 is in use (another node or demo?); stop it or choose "
                                f"other --rpc-port-base / --p2p-port-base / --prometheus-port-base") from None


def app_line(rpc_port: int) -> str:
    """Where the first node serves the web app, or how to build it when it is not built."""
    url = f"http://127.0.0.1:{rpc_port}/app/"
    if (default_app_dir() / "index.html").is_file():
        return f"web app: {url}"
    return f"web app: {url} answers 503 until it is built (make app)"


def run(households: int = 20, validators: int = 4, speed: int = 360, hours: int = 24, base_dir: Path | None = None,
        keep: bool = False, rpc_port_base: int = 9944, p2p_port_base: int = 30333,
        prometheus_port_base: int = 9615, seed: int = 2011, start_hour: int = 0,
        echo: Callable[[str], None] = print) -> int:
    """Run the demo; returns the process exit status."""
    _check_ports([b + i for b in (rpc_port_base, p2p_port_base, prometheus_port_base) for i in range(validators)])
    temp = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="gridchain-demo-")) if temp else base_dir
    if not temp and (base / "chain-spec.json").exists():
        raise DemoError(f"{base} holds an earlier demo; choose another --base-dir or remove it")
    sims = build_households(households, seed, zones=(NORTH, SOUTH), split_by_pv=True)
    now = time.time()
    day_start = (int(now) // 86_400 + 1) * 86_400 + start_hour * HOUR_S   # from the chain's next midnight (UTC)
    clock = demo_clock(speed, now, day_start, hours)
    spec = neighbourhood_spec(validators, [Household(h.name, h.prosumer, h.zone, h.rated_power_w,
                                                     h.field_certificate()) for h in sims], clock=clock.to_json())
    link = size_link(sims, spec["genesis"]["runtimeGenesis"]["config"]["grid"], day_start, hours)
    couple_feeders(spec, link.link_w)
    echo(f"gridchain demo: {households} households, {validators} validators, a simulated day at {speed}x "
         f"(a 15-minute interval every {900 / speed:.1f} s)")
    north = sum(1 for h in sims if h.zone == NORTH)
    echo(f"  feeders coupled: feeder-north ({north} homes with PV) and feeder-south ({len(sims) - north} without) "
         f"clear together; the link between them carries {link.link_w / 1000:.2f} kW each way"
         + (f", {LINK_SHARE[0]}/{LINK_SHARE[1]} of the {link.flow_wh * 4 / 1000:.2f} kW the "
            f"{time.strftime('%H:%M', time.gmtime(link.hour_start))} clearing would send south" if link.hour_start
            is not None else ""))
    echo(f"  {ATTRIBUTION}")
    spec_path, nodes = testnet.prepare(validators, base, rpc_port_base, p2p_port_base, prometheus_port_base,
                                       spec=spec)
    stopping = {"signal": None}

    def on_signal(signum: int, frame: object) -> None:
        stopping["signal"] = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs = []
    progress = Progress(echo, sys.stdout.isatty())
    status = 0
    try:
        extra = ["--block-time-ms", str(DEMO_BLOCK_TIME_MS)]
        for n in nodes:
            procs.append(testnet.start_node(spec_path, n, nodes, extra))
        urls = [n.rpc_url for n in nodes]
        for n, p in zip(nodes, procs):
            echo(f"  node{n.index} pid {p.pid:<7} RPC {n.rpc_url}  log {n.base_path / 'node.log'}")
        asyncio.run(_wait_ready(urls, procs))
        echo(f"network up: {validators} validators finalising; simulating {hours} h from "
             f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(day_start))} chain time (UTC)")
        echo(app_line(nodes[0].rpc_port))
        echo(f"  the dev households' meters ({', '.join(f'//{h.name}//meter' for h in DEV_HOUSEHOLDS)}) report "
             "each interval too, for trades made as them in the web app or the wallet")
        status = asyncio.run(_run_network(urls, clock, sims, day_start, hours, base, progress, echo, keep,
                                          nodes[0].rpc_port, procs))
        if status:
            return status
    except KeyboardInterrupt:
        progress.line("")
        echo("interrupted: stopping the network ...")
        status = 130
    except DemoError as e:
        progress.clear()
        echo(f"demo failed: {e}")
        status = 1
    except (TimeoutError, RpcError, OSError) as e:
        progress.clear()
        echo(f"demo failed: the network stopped answering ({e or type(e).__name__}); see the nodes' logs")
        status = 1
    finally:
        testnet.stop_all(procs)
        for s, h in old.items():
            signal.signal(s, h)
        if procs:
            echo("all nodes stopped")
        if temp and status == 0 and not keep:
            shutil.rmtree(base, ignore_errors=True)
        elif procs:
            echo(f"chain data and logs kept in {base}")
    return status
