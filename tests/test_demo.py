"""`gridchain demo` as a newcomer runs it (`make run`), shortened: a neighbourhood trades over four
real validator processes on an accelerated clock, meters of every kind (gridchain's ed25519 ones and
OCMF, SML/EDL40 and DLMS field meters) deliver every reading, the day settles, the summary is
printed, and every process the demo started is gone afterwards, also on Ctrl-C."""
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


def test_a_short_sunny_demo_trades_settles_and_keeps_every_reading(tmp_path):
    demo = _start_demo(tmp_path, "--households", "8", "--hours", "2", "--start-hour", "11", "--speed", "720")
    pids: list[int] = []
    try:
        out, _ = demo.communicate(timeout=240)
        pids = [int(p) for p in re.findall(r"node\d pid (\d+)", out)]
        assert demo.returncode == 0, out
        assert len(pids) == 4, out
        assert "CC BY 4.0" in out                                   # the data's attribution is shown
        hours = re.findall(r"^(\d\d:\d\d)-\d\d:\d\d  trades", out, re.MULTILINE)
        assert hours == ["11:00", "12:00"], out
        traded = float(re.search(r"energy traded locally\s+([\d.]+) kWh", out).group(1))
        delivered = float(re.search(r"delivered and settled ([\d.]+) kWh", out).group(1))
        assert traded > 0 and delivered > 0, out                   # midday PV sold to neighbours
        assert re.search(r"\(\d+ refunded, 0 not yet final\)", out), out
        m = re.search(r"meter readings\s+built (\d+), finalised (\d+), rejected (\d+), pending (\d+)", out)
        assert m, out
        built, final, rejected, pending = map(int, m.groups())
        assert built >= 8 * 8 and final == built and rejected == 0 and pending == 0, out
        # a mix of meter kinds: Household5 OCMF, 6 SML/EDL40 (import-only), 7 DLMS, the rest ed25519,
        # every one of them reporting through the gateway
        kinds = re.search(r"meters reported\s+ed25519 (\d+)/5, OCMF (\d+)/1, SML/EDL40 (\d+)/1, DLMS (\d+)/1", out)
        assert kinds and list(map(int, kinds.groups())) == [5, 1, 1, 1], out
        hourly = re.findall(r"^\d\d:\d\d-\d\d:\d\d  trades .*  meters (.*)$", out, re.MULTILINE)
        assert len(hourly) == 2 and all("OCMF 1" in h and "SML/EDL40 1" in h and "DLMS 1" in h for h in hourly), out
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
