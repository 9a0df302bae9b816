"""Resident memory of a running node with 100,000 funded accounts.

Writes a chain spec (the dev spec plus N funded accounts), starts a real `gridchain run` process
authoring blocks, waits until it serves RPC and has authored blocks, submits transfers, and reads
the resident set size of the node process (and, separately, of its signature workers). The limit
it is compared with is the target (200 MB).

    .venv/bin/python -m bench.node_memory [--accounts 100000]
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import accounts, spec_with_accounts, transfers
from rpc.client import Client

TARGET_MB = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    keys = accounts(args.accounts)
    spec = spec_with_accounts(keys)
    print(f"spec with {args.accounts} funded accounts built in {time.perf_counter() - t0:.1f} s")
    gridchain = str(Path(sys.executable).with_name("gridchain"))
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        port = free_port()
        log = open(Path(tmp) / "node.log", "w")
        proc = subprocess.Popen([gridchain, "run", "--chain", str(spec_path), "--base-path", str(Path(tmp) / "base"),
                                 "--validator", "--key", "//Alice", "--rpc-port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            client = None
            while time.monotonic() < deadline:
                try:
                    client = Client(url)
                    client.request("system_health")
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if client is not None:
                        client.close()
                        client = None
                    if proc.poll() is not None:
                        raise SystemExit(f"node exited: see {log.name}")
                    time.sleep(0.5)
            print(f"node serving RPC after {time.perf_counter() - t0:.1f} s")
            genesis = bytes.fromhex(client.request("chain_getBlockHash", [0])[2:])
            for xt in transfers(keys[:2000], 1, genesis):
                client.request("author_submitExtrinsic", ["0x" + xt.hex()])
            start = int(client.request("chain_getHeader")["number"], 16)
            while int(client.request("chain_getHeader")["number"], 16) < start + 3:
                time.sleep(0.3)
            client.close()
            node = psutil.Process(proc.pid)
            rss = node.memory_info().rss / 2**20
            workers = sum(c.memory_info().rss for c in node.children(recursive=True)) / 2**20
            print(f"node resident memory with {args.accounts} accounts: {rss:.0f} MB "
                  f"(signature workers: {workers:.0f} MB more); target < {TARGET_MB} MB; "
                  f"ratio to target {rss / TARGET_MB:.2f}")
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


if __name__ == "__main__":
    main()
