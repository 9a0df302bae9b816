"""Prometheus metrics of a node, served on `--prometheus-port` (default 9615, loopback unless
`--prometheus-external`), named `gridchain_*`.

Each node has its own registry (not the library's global one), so several nodes in one process
(tests) do not collide, and only these metrics are exposed. Gauges that mirror a counter kept
elsewhere (gossip drops in the p2p host, the pool's size) are read when scraped, by callbacks, so
the hot paths never touch the metrics.
"""
from __future__ import annotations

from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

DEFAULT_PROMETHEUS_PORT = 9615

#: finality latency buckets, seconds: a 4-validator loopback network decides in tens of milliseconds
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.best_height = Gauge("gridchain_best_height", "Number of the best block", registry=r)
        self.finalized_height = Gauge("gridchain_finalized_height", "Number of the last finalised block",
                                      registry=r)
        self.rounds_per_height = Histogram("gridchain_consensus_rounds_per_height",
                                           "Consensus rounds needed to decide a height (1 = first round)",
                                           buckets=(1, 2, 3, 4, 6, 8, 16), registry=r)
        self.finality_latency = Histogram("gridchain_finality_latency_seconds",
                                          "From entering a height to committing its block",
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.wal_fsync = Histogram("gridchain_consensus_wal_fsync_seconds",
                                   "Time to fsync the consensus write-ahead log before a message leaves",
                                   buckets=_FSYNC_BUCKETS, registry=r)
        self.peers = Gauge("gridchain_peers", "Connected peers", registry=r)
        self.pool_ready = Gauge("gridchain_pool_ready", "Ready transactions in the pool", registry=r)
        self.pool_future = Gauge("gridchain_pool_future", "Future transactions in the pool", registry=r)
        self.gossip_drops = Gauge("gridchain_gossip_drops", "Gossip messages dropped (refused, oversize, "
                                  "queue full), by reason", ["reason"], registry=r)
        self.consensus_messages_rejected = Counter("gridchain_consensus_messages_rejected",
                                                   "Consensus messages refused, by reason", ["reason"],
                                                   registry=r)
        self.blocks_synced = Counter("gridchain_blocks_synced", "Blocks imported by block sync", registry=r)
        # exposed as gridchain_storage_errors_total
        self.storage_errors = Counter("gridchain_storage_errors", "Failed reads and writes of the node's "
                                      "database (corruption, I/O errors)", registry=r)
        self.rpc_refused_connections = Gauge("gridchain_rpc_refused_connections",
                                             "RPC connections refused at accept time (connection limit)",
                                             registry=r)

    def watch(self, gauge: Gauge, fn: Callable[[], float]) -> None:
        """Let `gauge` read its value from `fn` when scraped."""
        gauge.set_function(fn)

    def watch_rpc_server(self, server: Any) -> None:
        """Read the RPC server's own counters when scraped (0 from a server that keeps none)."""
        self.watch(self.rpc_refused_connections, lambda: getattr(server, "refused_connections", 0))

    def serve(self, port: int, external: bool = False) -> None:
        """Start the exporter (a daemon thread of prometheus_client); `close` stops it."""
        self._server, self._thread = start_http_server(port, addr="0.0.0.0" if external else "127.0.0.1",
                                                       registry=self.registry)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)
            self._server = None
