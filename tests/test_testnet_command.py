"""`gridchain testnet --validators 4`, as an operator runs it: four validator processes on loopback
finalise blocks with the same hashes on every node, and SIGTERM to the supervisor stops them all."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time

import psutil
import pytest

from tests.bft_network import free_ports
from tests.node_process import REPO, gridchain_cmd, http_post, stop_supervisor

pytestmark = pytest.mark.slow   # real node processes


def _free_run(count: int, taken: set[int]) -> int:
    """A base port with `count` consecutive free ports (node i of the testnet uses base + i), none
    of them in `taken` (which it extends)."""
    while True:
        base = free_ports(1)[0]
        run = range(base, base + count)
        if base + count < 32000 and not taken.intersection(run) and all(_is_free(p) for p in run):
            taken.update(run)
            return base


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _rpc(port: int, method: str, params: list | None = None):
    status, data = http_post(port, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                               "params": params or []}).encode(), timeout=5.0)
    assert status == 200
    return json.loads(data)["result"]


def _finalized(port: int) -> int:
    return int(_rpc(port, "chain_getHeader", [_rpc(port, "chain_getFinalizedHead")])["number"], 16)


def test_testnet_finalises_the_same_blocks_on_all_four_nodes_and_stops_them_on_sigterm(tmp_path):
    taken: set[int] = set()
    rpc, p2p, metrics = _free_run(4, taken), _free_run(4, taken), _free_run(4, taken)
    cmd = gridchain_cmd("testnet", "--validators", "4", "--base-dir", str(tmp_path / "net"),
                        "--rpc-port-base", str(rpc), "--p2p-port-base", str(p2p),
                        "--prometheus-port-base", str(metrics))
    sup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           cwd=str(REPO), text=True, start_new_session=True)
    pids: list[int] = []
    try:
        header: list[str] = []
        deadline = time.monotonic() + 60
        while len(pids) < 4 and time.monotonic() < deadline:
            line = sup.stdout.readline()
            if not line:
                break
            header.append(line)
            m = re.match(r"\s+node\d\s+pid (\d+)", line)
            if m:
                pids.append(int(m.group(1)))
        assert len(pids) == 4, "".join(header)
        ports = [rpc + i for i in range(4)]
        deadline = time.monotonic() + 90
        while True:
            try:
                if min(_finalized(p) for p in ports) >= 3:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, "the testnet did not finalise 3 blocks on every node in 90 s"
            time.sleep(0.5)
        for n in range(1, 4):
            assert len({_rpc(p, "chain_getBlockHash", [n]) for p in ports}) == 1, f"nodes disagree at #{n}"
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(30) == 0
        out = sup.stdout.read()
        assert "all nodes stopped" in out
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        stop_supervisor(sup, pids)
