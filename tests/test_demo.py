"""`gridchain demo` as a newcomer runs it (`make run`), shortened: a neighbourhood trades over four
real validator processes on an accelerated clock, its two feeders clearing as one coupled region
whose link is congested around noon, meters of every kind (gridchain's ed25519 ones and OCMF,
SML/EDL40 and DLMS field meters) deliver every reading, the day settles, the summary is printed,
money is conserved, and every process the demo started is gone afterwards, also on Ctrl-C."""
from __future__ import annotations

import re
import signal
import subprocess
import time

import psutil
import pytest

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


def test_a_short_sunny_demo_couples_the_feeders_trades_settles_and_keeps_every_reading(tmp_path):
    # the demo's 20 households: 14 with PV on feeder-north, 6 without on feeder-south (households 3,
    # 6, 9, 12, 15, 18), so north's noon surplus must cross the link to reach south's demand
    demo = _start_demo(tmp_path, "--households", "20", "--hours", "2", "--start-hour", "11", "--speed", "720")
    pids: list[int] = []
    try:
        out, _ = demo.communicate(timeout=300)
        pids = [int(p) for p in re.findall(r"node\d pid (\d+)", out)]
        assert demo.returncode == 0, out
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
        assert "all nodes stopped" in out
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
