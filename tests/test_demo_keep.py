"""`gridchain demo --keep` (what `make run` runs) leaves a network on which the dev households' meters
keep reporting: //Bob//meter, //Charlie//meter and //Ferdie//meter (certified at genesis) submit a
signed reading every interval during the simulated day and after it, so a trade a newcomer makes as
//Bob in the web app settles against metered delivery; SIGTERM then stops the meters and every node.
And the dev households (meters/dev_households.py) fit their genesis certificates."""
from __future__ import annotations

import calendar
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from genesis.chain_spec import DEV_METERS, DEV_ROLES
from meters.dev_households import DEV_HOUSEHOLDS
from meters.household import load_profile
from rpc.client import Client
from tests.node_process import stop_supervisor
from tests.test_demo import _gone, _start_demo

I = 900


def test_the_dev_households_fit_their_genesis_meters():
    """Same names and roles as genesis; a household with PV on a bidirectional meter, one without on
    an import-only meter; the data's busiest half hour, at each household's scale, within the meter's
    rated power (else the chain flags the reading implausible and never settles it)."""
    meters = {owner: (kind, rated) for owner, _zone, kind, rated in DEV_METERS}
    assert sorted(h.name for h in DEV_HOUSEHOLDS) == sorted(meters)
    profile = load_profile()
    for h in DEV_HOUSEHOLDS:
        kind, rated_w = meters[h.name]
        assert DEV_ROLES[h.name] == ["prosumer" if h.prosumer else "consumer"]
        assert kind == (2 if h.prosumer else 0)
        peak_load_w = max(profile.consumption_wh) * h.spec.load_pct // 100 * 3600 // 1800
        peak_pv_w = max(profile.generation_wh) * h.spec.pv_pct // 100 * 3600 // 1800
        assert peak_load_w <= rated_w and peak_pv_w <= rated_w, h


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


@pytest.mark.slow       # four real validator processes
def test_with_keep_the_dev_meters_report_after_the_day_and_sigterm_stops_every_node(tmp_path):
    demo = _start_demo(tmp_path, "--keep", "--households", "4", "--hours", "1", "--start-hour", "12",
                       "--speed", "720")
    out: list[str] = []
    pids: list[int] = []
    try:
        q = _lines(demo)
        _read_until(q, "network up", 90, out)
        text = "".join(out)
        pids = [int(p) for p in re.findall(r"node\d pid (\d+)", text)]
        rpc_url = re.search(r"node0 pid \d+ +RPC (\S+)", text).group(1)
        day = re.search(r"simulating 1 h from (\d{4}-\d\d-\d\d \d\d:\d\d) chain time", text).group(1)
        day_start = calendar.timegm(time.strptime(day, "%Y-%m-%d %H:%M"))
        day_end = day_start + 3600
        _read_until(q, "Ctrl-C stops every node.", 180, out)
        text = "".join(out)
        assert "import //Bob" in text and "//Charlie" in text and "//Dave" in text, text   # the web app flow
        assert "dev households' meters keep reporting" in text, text
        with Client(rpc_url, timeout=10) as rpc:
            during = _intervals(rpc, "Bob", day_start, day_end - I)
            assert any(r["status"] == "read" for r in during), during       # Bob's meter reported in the day
            # and after it: the chain clock's accelerated tail carries it past the day's end
            deadline = time.monotonic() + 60
            while True:
                after = {name: [r for r in _intervals(rpc, name, day_end, day_end + 8 * I) if r["status"] == "read"]
                         for name in ("Bob", "Charlie", "Ferdie")}
                if all(after.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert all(after.values()), after
            assert all(r["plausible"] for rows in after.values() for r in rows), after
            assert all(r["exportWh"] == 0 for r in after["Charlie"]), after        # import-only, no PV
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
        rest = []
        while (line := q.get(timeout=10)) is not None:
            rest.append(line)
        out += rest
        assert demo.returncode == 130, "".join(out)
        assert "all nodes stopped" in "".join(rest) and "Traceback" not in "".join(rest), "".join(out)
        assert _gone(pids)
    finally:
        stop_supervisor(demo, pids)
