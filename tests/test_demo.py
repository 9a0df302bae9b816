"""`gridchain demo` as a newcomer runs it (`make run`), shortened: a neighbourhood trades over four
real validator processes on an accelerated clock, its two feeders clearing as one coupled region
whose link is congested around noon, meters of every kind (gridchain's ed25519 ones and OCMF,
SML/EDL40 and DLMS field meters) deliver every reading, the day settles, the summary is printed,
money is conserved; with --keep the network stays up and the dev households' meters keep reporting
after the day; and every process the demo started is gone afterwards, on SIGTERM and on Ctrl-C."""
from __future__ import annotations

import calendar
import queue
import re
import signal
import subprocess
import threading
import time

import psutil
import pytest

from meters.dev_households import DEV_HOUSEHOLDS
from rpc.client import Client
from tests.node_process import REPO, gridchain_cmd, stop_supervisor
from tests.test_testnet_command import _free_run

pytestmark = pytest.mark.slow   # real node processes


def _start_demo(tmp_path, *args: str) -> subprocess.Popen:
    taken: set[int] = set()
    rpc, p2p, metrics = _free_run(4, taken), _free_run(4, taken), _free_run(4, taken)
    cmd = gridchain_cmd("demo", "--base-dir", str(tmp_path / "demo"), "--rpc-port-base", str(rpc),
                        "--p2p-port-base", str(p2p), "--prometheus-port-base", str(metrics), *args)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=str(REPO), text=True, start_new_session=True)


def _gone(pids: list[int]) -> bool:
    return all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read on a thread so that waiting for one is bounded."""
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            q.put(line)
        q.put(None)
    threading.Thread(target=pump, daemon=True).start()
    return q


def _read_until(q: queue.Queue, marker: str, timeout_s: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} within {timeout_s:.0f} s:\n" + "".join(seen)
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            continue
        assert line is not None, f"the demo ended before {marker!r}:\n" + "".join(seen)
        seen.append(line)
        if line.startswith(marker):
            return


def _intervals(rpc: Client, name: str, lo: int, hi: int) -> list[dict]:
    meter = next(h.meter for h in DEV_HOUSEHOLDS if h.name == name)
    return rpc.request("energy_meterIntervals", ["0x" + meter.public_key.hex(), lo, hi])


def test_a_short_sunny_demo_couples_the_feeders_trades_settles_and_keeps_every_reading(tmp_path):
    # the demo's 20 households: 14 with PV on feeder-north, 6 without on feeder-south (households 3,
    # 6, 9, 12, 15, 18), so north's noon surplus must cross the link to reach south's demand
    # with --keep, as `make run` runs it: after the summary the network stays up and the dev
    # households' meters (//Bob//meter, //Charlie//meter, //Ferdie//meter) keep reporting, so a
    # trade a newcomer makes as //Bob in the web app settles against metered delivery
    demo = _start_demo(tmp_path, "--keep", "--households", "20", "--hours", "2", "--start-hour", "11",
                       "--speed", "720")
    pids: list[int] = []
    lines: list[str] = []
    try:
        q = _lines(demo)
        _read_until(q, "network up", 90, lines)
        pids = [int(p) for p in re.findall(r"node\d pid (\d+)", "".join(lines))]
        rpc_url = re.search(r"node0 pid \d+ +RPC (\S+)", "".join(lines)).group(1)
        day = re.search(r"simulating 2 h from (\d{4}-\d\d-\d\d \d\d:\d\d) chain time", "".join(lines)).group(1)
        day_start = calendar.timegm(time.strptime(day, "%Y-%m-%d %H:%M"))
        day_end = day_start + 2 * 3600
        _read_until(q, "Ctrl-C stops every node.", 300, lines)
        out = "".join(lines)
        assert len(pids) == 4, out
        assert "CC BY 4.0" in out                                   # the data's attribution is shown
        assert re.search(r"^web app: http://127\.0\.0\.1:\d+/app/", out, re.MULTILINE), out   # node0's app
        assert re.search(r"feeders coupled: feeder-north \(14 homes with PV\) and feeder-south \(6 without\) "
                         r"clear together; the link between them carries [\d.]+ kW", out), out
        hours = re.findall(r"^(\d\d:\d\d)-\d\d:\d\d  trades", out, re.MULTILINE)
        assert hours == ["11:00", "12:00"], out
        traded = float(re.search(r"energy traded locally\s+([\d.]+) kWh", out).group(1))
        delivered = float(re.search(r"delivered and settled ([\d.]+) kWh", out).group(1))
        assert traded > 0 and delivered > 0, out                   # midday PV sold to neighbours
        assert re.search(r"\(\d+ refunded, 0 not yet final\)", out), out
        # the coupled clearing around noon: the link from north to south is full, south's price is
        # above north's, and the difference over the flow goes to the DSO as congestion rent
        coupled = re.findall(r"^ +coupled  feeder-north ([\d.]+), feeder-south ([\d.]+) GEUR/kWh  "
                             r"feeder-north->feeder-south ([\d.]+) kWh, limit ([\d.]+) kWh an interval, "
                             r"congested (\d)/(\d) intervals  rent ([\d.]+) GEUR to the DSO$", out, re.MULTILINE)
        congested = [c for c in coupled if int(c[4]) > 0]
        assert congested, out
        assert all(float(c[1]) > float(c[0]) and float(c[6]) > 0 for c in congested), out
        m = re.search(r"coupled clearing\s+(\d+) of (\d+) intervals traded; link congested in (\d+) \(", out)
        assert m and int(m.group(3)) == sum(int(c[4]) for c in coupled), out
        rent = float(re.search(r"congestion rent\s+([\d.]+) GEUR paid to the DSO in \d+ intervals$", out,
                               re.MULTILINE).group(1))
        assert rent > 0 and abs(rent - sum(float(c[6]) for c in coupled)) < 0.0002, out
        # one side per household and interval: no standing post refused for BothSidesInRegion, no
        # household transaction failed
        assert re.search(r"standing orders\s+\d+ orders posted, \d+ posts skipped", out), out
        assert "BothSidesInRegion" not in out and "failed" not in out, out
        money = re.search(r"money\s+GEUR conserved: supply [\d,.]+ = the sum of all balances, at the start and at "
                          r"the end; over the run households (-[\d.]+), DSO \+([\d.]+)", out)
        assert money and float(money.group(2)) > rent, out        # grid fees and congestion rent
        m = re.search(r"meter readings\s+built (\d+), finalised (\d+), rejected (\d+), pending (\d+)", out)
        assert m, out
        built, final, rejected, pending = map(int, m.groups())
        assert built >= 20 * 8 and final == built and rejected == 0 and pending == 0, out
        # a mix of meter kinds: every 5th household OCMF, every 7th DLMS, every 6th without PV
        # SML/EDL40, the rest ed25519, every one of them reporting through the gateway
        kinds = re.search(r"meters reported\s+ed25519 (\d+)/11, OCMF (\d+)/4, SML/EDL40 (\d+)/3, DLMS (\d+)/2", out)
        assert kinds and list(map(int, kinds.groups())) == [11, 4, 3, 2], out
        hourly = re.findall(r"^\d\d:\d\d-\d\d:\d\d  trades .*  meters (.*)$", out, re.MULTILINE)
        assert len(hourly) == 2 and all("OCMF 4" in h and "SML/EDL40 3" in h and "DLMS 2" in h for h in hourly), out
        # the web app flow the guidance suggests, and the dev meters reporting during the day and after it
        assert "import //Bob" in out and "//Charlie" in out and "//Dave" in out, out
        assert "dev households' meters keep reporting" in out, out
        with Client(rpc_url, timeout=10) as rpc:
            assert any(r["status"] == "read" for r in _intervals(rpc, "Bob", day_start, day_end - 900))
            deadline = time.monotonic() + 60
            while True:
                after = {name: [r for r in _intervals(rpc, name, day_end, day_end + 8 * 900) if r["status"] == "read"]
                         for name in ("Bob", "Charlie", "Ferdie")}
                if all(after.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert all(after.values()), after
            assert all(r["plausible"] for rows in after.values() for r in rows), after
            assert all(r["exportWh"] == 0 for r in after["Charlie"]), after        # import-only, no PV
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
        rest: list[str] = []
        while (line := q.get(timeout=10)) is not None:
            rest.append(line)
        assert demo.returncode == 130, out + "".join(rest)
        assert "all nodes stopped" in "".join(rest) and "Traceback" not in "".join(rest), out + "".join(rest)
        assert _gone(pids)
    finally:
        stop_supervisor(demo, pids)


def test_ctrl_c_stops_every_validator_the_demo_started(tmp_path):
    demo = _start_demo(tmp_path, "--households", "4", "--hours", "2", "--speed", "360")
    pids: list[int] = []
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r"\s+node\d pid (\d+)", line)
            if m:
                pids.append(int(m.group(1)))
            if line.startswith("network up"):
                break
        assert len(pids) == 4 and lines[-1].startswith("network up"), "".join(lines)
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
        assert demo.returncode == 130, "".join(lines) + rest
        assert "interrupted" in rest and "all nodes stopped" in rest
        assert _gone(pids)
    finally:
        stop_supervisor(demo, pids)
