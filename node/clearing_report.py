"""The regulator's clearing report: coupled regions' results over a range of intervals, as CSV rows.

`gridchain report clearing` reads `energy_clearing` once per interval over JSON-RPC, every call
pinned to the block the first one read, so the report is one consistent state however many blocks
arrive meanwhile. A spreadsheet takes one table per sheet, so the report is one table per run: zone
rows (`--kind zones`: price, bought, sold, net import) or link rows (`--kind links`: flow, limit,
congestion, rent, DSO). A region not yet cleared for an interval has no rows; the summary line on
standard error counts them.
"""
from __future__ import annotations

from typing import Any

from node.energy_rpc import MAX_INTERVALS
from pallets.grid import Config as GridConfig
from pallets.grid import interval_start

ZONE_COLUMNS = ["intervalStart", "region", "zone", "pricePerKwh", "boughtWh", "soldWh", "netImportWh",
                "importedWh", "exportedWh"]
LINK_COLUMNS = ["intervalStart", "region", "fromZone", "toZone", "flowWh", "limitWh", "congested", "rent", "dso"]
COLUMNS = {"zones": ZONE_COLUMNS, "links": LINK_COLUMNS}

#: `energy_clearing` calls sent in one batch request (a day of 15-minute intervals; the server takes 1,000)
BATCH = 96


def intervals(start: int, end: int) -> range:
    """The interval starts from the one holding `start` to `end`, bounded as `energy_intervalTrades`
    bounds its range (so the two reports cover the same spans); ValueError with the reason."""
    lo = interval_start(start)
    if end < lo:
        raise ValueError("--to is before --from")
    if (end - lo) // GridConfig.interval_s > MAX_INTERVALS:
        raise ValueError(f"at most {MAX_INTERVALS} intervals per report (31 days); split the range")
    return range(lo, end + 1, GridConfig.interval_s)


def fetch(client: Any, starts: range) -> tuple[list[dict], str]:
    """(`energy_clearing` of every interval in `starts`, the block hash they were all read at).
    Raises the node's error (an `RpcError`) if any call fails."""
    from rpc.client import RpcError  # noqa: PLC0415 - the client library is the CLI's, loaded on use
    first = client.request("energy_clearing", [starts[0]])
    at = first["at"]
    results = [first]
    rest = starts[1:]
    for i in range(0, len(rest), BATCH):
        answers = client.batch([("energy_clearing", [t, at]) for t in rest[i:i + BATCH]])
        for answer in answers:
            if isinstance(answer, RpcError):
                raise answer
            results.append(answer)
    return results, at


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else v


def rows(results: list[dict], kind: str) -> list[list]:
    """The CSV rows (without the header) of `kind` ("zones" or "links"), by interval, region and
    then the node's order (zone id; link direction)."""
    columns = COLUMNS[kind]
    out = []
    for r in results:
        for region in r["regions"]:
            for item in region[kind]:
                merged = {"intervalStart": r["intervalStart"], "region": region["region"], **item}
                out.append([_cell(merged.get(k)) for k in columns])
    return out


def summary(results: list[dict], n_rows: int, kind: str, at: str) -> str:
    """One line for standard error: what the report holds and what had not cleared."""
    regions = [region for r in results for region in r["regions"]]
    pending = sum(1 for region in regions if not region["cleared"])
    return (f"{n_rows} {kind[:-1]} rows from {len(regions) - pending} region clearings over {len(results)} "
            f"intervals ({pending} not cleared) (state at block {at})")
