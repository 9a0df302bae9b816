"""What the market did, read over JSON-RPC as any outside client can: the coupled clearings of a
region (zone prices, link flows, congestion), the standing-order posts and the reasons some were
skipped, the congestion rent paid to DSOs, and whether the stablecoin is conserved.

The simulator's reporter uses it after each simulated hour and at the end of the day. Clearings come
from `energy_clearing`; the rest from the chain's state and events through the node's metadata
(`wallet.chain.ChainState`): each finalized block's `system.events` for what the market's hooks did
(StandingOrderPosted, StandingOrderSkipped, CongestionRentPaid), and `balances.asset_balance` and
`balances.assets` for the money.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from primitives import ss58
from primitives.hashing import keccak256
from rpc.client import AsyncClient, RpcError
from wallet.chain import ChainState

#: the market's escrow account (pallets.market.escrow.ESCROW_ACCOUNT): an id nobody holds a key for
ESCROW_ACCOUNT = keccak256(b"gridchain/market/escrow")
#: blocks whose events one scan reads per JSON-RPC batch
EVENT_BATCH = 200


@dataclass(frozen=True)
class LinkFlow:
    """One direction of a link in one coupled clearing."""

    from_zone: int
    to_zone: int
    flow_wh: int
    limit_wh: int          # the direction's room before the clearing
    congested: bool
    rent: int              # stablecoin units, paid to the from-zone's DSO


@dataclass(frozen=True)
class IntervalClearing:
    """A region's coupled clearing for one delivery interval."""

    interval_start: int
    prices: dict[int, int]      # zone -> energy price per kWh
    volume_wh: int
    links: tuple[LinkFlow, ...]

    @property
    def congested(self) -> bool:
        return any(link.congested and link.flow_wh for link in self.links)

    @property
    def rent(self) -> int:
        return sum(link.rent for link in self.links)


@dataclass
class MarketActivity:
    """Counts from the market's events over a span of blocks."""

    posted: int = 0
    skipped: Counter = field(default_factory=Counter)   # reason -> standing posts skipped
    rent_paid: Counter = field(default_factory=Counter)  # (interval start, DSO) -> congestion rent paid

    def add(self, other: MarketActivity) -> None:
        self.posted += other.posted
        self.skipped.update(other.skipped)
        self.rent_paid.update(other.rent_paid)

    def rent_in(self, start: int, end: int) -> dict[bytes, int]:
        """DSO -> congestion rent paid for delivery intervals in [start, end)."""
        out: dict[bytes, int] = {}
        for (t, dso), amount in self.rent_paid.items():
            if start <= t < end:
                out[dso] = out.get(dso, 0) + amount
        return out


class MarketWatch:
    """Reads one node's market over JSON-RPC. `scan` walks the finalized blocks since its last call."""

    def __init__(self, client: AsyncClient, state: ChainState, coupled: bool,
                 zone_names: dict[int, str], dsos: set[bytes], next_block: int) -> None:
        self.client, self.state = client, state
        self.coupled = coupled           # some zones clear as a coupled region
        self.zone_names = zone_names
        self.dsos = dsos                 # the zones' DSOs
        self._next_block = next_block

    @classmethod
    async def connect(cls, client: AsyncClient, state: ChainState) -> MarketWatch:
        """Watch from the current finalized block on."""
        zones = await client.request("energy_zones", [])
        zones = zones["items"] if isinstance(zones, dict) else zones
        names = {z["zone"]: z["name"] for z in zones}
        dsos = {ss58.decode(z["dso"]) for z in zones}
        head = await client.request("chain_getHeader", [await client.request("chain_getFinalizedHead", [])])
        coupled = any(z.get("mode") == "coupled" for z in zones)
        return cls(client, state, coupled, names, dsos, _number(head["number"]) + 1)

    async def clearings(self, start: int, end: int, interval_s: int, region: int = 0) -> list[IntervalClearing]:
        """The region's clearings of the intervals in [start, end) that have cleared, in order, all
        read at the finalized head (`energy_clearing`)."""
        at = await self.client.request("chain_getFinalizedHead", [])
        times = list(range(start, end, interval_s))
        out = []
        for t, answer in zip(times, await self.client.batch([("energy_clearing", [t, at]) for t in times])):
            if isinstance(answer, RpcError):
                raise answer
            c = next((r for r in answer["regions"] if r["region"] == region), None)
            if c is None or not c["cleared"]:
                continue
            links = tuple(LinkFlow(x["fromZone"], x["toZone"], x["flowWh"], x["limitWh"], x["congested"], x["rent"])
                          for x in c["links"])
            out.append(IntervalClearing(t, {z["zone"]: z["pricePerKwh"] for z in c["zones"]}, c["volumeWh"], links))
        return out

    async def scan(self) -> MarketActivity:
        """The market's events in the finalized blocks since the last scan."""
        head = await self.client.request("chain_getHeader", [await self.client.request("chain_getFinalizedHead", [])])
        last = _number(head["number"])
        out = MarketActivity()
        events_key = "0x" + self.state.prefix("system", "events").hex()
        while self._next_block <= last:
            numbers = list(range(self._next_block, min(last, self._next_block + EVENT_BATCH - 1) + 1))
            hashes = await self.client.request("chain_getBlockHash", [numbers])
            results = await self.client.batch([("state_getStorage", [events_key, h]) for h in hashes])
            for raw in results:
                if isinstance(raw, RpcError):
                    raise raw
                for e in self.state.block_events(None if raw is None else bytes.fromhex(raw[2:])):
                    if e.pallet != "market":
                        continue
                    if e.name == "StandingOrderPosted":
                        out.posted += 1
                    elif e.name == "StandingOrderSkipped":
                        out.skipped[e.fields["reason"]] += 1
                    elif e.name == "CongestionRentPaid":
                        out.rent_paid[(e.fields["interval_start"], bytes(e.fields["dso"]))] += e.fields["amount"]
            self._next_block = numbers[-1] + 1
        return out

    async def money(self, asset_id: int, labels: dict[bytes, str]) -> dict[str, Any]:
        """The asset's supply against the sum of every account's balance, at one finalized block:
        {supply, held: label -> balance (`labels` maps an account to its label; the rest are
        "others"), conserved: supply == the sum}."""
        at = bytes.fromhex((await self.client.request("chain_getFinalizedHead", []))[2:])
        details = await self.state.read("balances", "assets", asset_id, at=at)
        keys, _more = await self.state.keys_with_prefix(self.state.key("balances", "asset_balance", asset_id), at,
                                                        None)
        values = await self.state.read_keys("balances", "asset_balance", keys, at)
        held: dict[str, int] = {}
        for key, value in zip(keys, values):
            _asset, who = self.state.decode_keys("balances", "asset_balance", key)
            label = labels.get(bytes(who), "others")
            held[label] = held.get(label, 0) + (value or 0)
        supply = details["supply"] if details else 0
        return {"supply": supply, "held": held, "conserved": supply == sum(held.values())}


def _number(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def format_clearings(clearings: list[IntervalClearing], zone_names: dict[int, str], unit: int) -> str | None:
    """One line for an hour's coupled clearings: the mean zone prices of the intervals that traded,
    the flow over each link direction used, how many intervals it was congested in, and the rent."""
    traded = [c for c in clearings if c.volume_wh]
    if not traded:
        return None
    zones = sorted({z for c in traded for z in c.prices})
    prices = ", ".join(f"{zone_names.get(z, z)} {sum(c.prices[z] for c in traded) / len(traded) / unit:.3f}"
                       for z in zones)
    flows: dict[tuple[int, int], list[LinkFlow]] = {}
    for c in traded:
        for link in c.links:
            if link.flow_wh:
                flows.setdefault((link.from_zone, link.to_zone), []).append(link)
    parts = []
    for (a, b), links in sorted(flows.items()):
        congested = sum(1 for link in links if link.congested)
        parts.append(f"{zone_names.get(a, a)}->{zone_names.get(b, b)} {sum(x.flow_wh for x in links) / 1000:.2f} kWh, "
                     f"limit {max(x.limit_wh for x in links) / 1000:.2f} kWh an interval, congested "
                     f"{congested}/{len(clearings)} intervals")
    rent = sum(c.rent for c in clearings)
    return (f"coupled  {prices} GEUR/kWh  " + ("; ".join(parts) if parts else "no flow between zones")
            + f"  rent {rent / unit:.4f} GEUR to the DSO")


def market_rows(clearings: list[IntervalClearing], activity: MarketActivity, zone_names: dict[int, str],
                span: tuple[int, int], money_start: dict[str, Any], money: dict[str, Any],
                unit: int) -> list[tuple[str, str]]:
    """Summary rows (label, text) for the coupled clearings of the run, the congestion rent paid
    for the intervals in `span`, the standing-order posts and skips, and the money."""
    rows = []
    traded = [c for c in clearings if c.volume_wh]
    if traded:
        congested = [c for c in traded if c.congested]
        text = f"{len(traded)} of {len(clearings)} intervals traded"
        if congested:
            widest = max(congested, key=lambda c: (max(c.prices.values()) - min(c.prices.values()), -c.interval_start))
            prices = " vs ".join(f"{zone_names.get(z, z)} {p / unit:.3f}" for z, p in sorted(widest.prices.items()))
            text += (f"; link congested in {len(congested)} ({_clock(congested[0].interval_start)}-"
                     f"{_clock(congested[-1].interval_start + 900)}), widest at {_clock(widest.interval_start)}: "
                     f"{prices} GEUR/kWh")
        else:
            text += "; no link congested, one price"
        rows.append(("coupled clearing", text))
        rent = sum(c.rent for c in clearings)
        paid = sum(activity.rent_in(*span).values())
        rows.append(("congestion rent", f"{paid / unit:.4f} GEUR paid to the DSO in "
                                        f"{sum(1 for c in clearings if c.rent)} intervals"
                                        + ("" if paid == rent else f" (the clearings record {rent / unit:.4f})")))
    skipped = sum(activity.skipped.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(activity.skipped.items()))
    rows.append(("standing orders", f"{activity.posted} orders posted, {skipped} posts skipped"
                                    + (f" ({reasons})" if reasons else "")))
    if money and money_start:
        rows.append(("money", _money_text(money_start, money, unit)))
    return rows


def _money_text(before: dict[str, Any], after: dict[str, Any], unit: int) -> str:
    """Whether the stablecoin's supply equals the sum of all balances, at the start and at the end,
    and how the balances moved between holders over the run."""
    labels = ("households", "DSO", "market escrow", "others")
    moved = ", ".join(f"{label} {(after['held'].get(label, 0) - before['held'].get(label, 0)) / unit:+.4f}"
                      for label in labels if label in after["held"] or label in before["held"])
    if before["conserved"] and after["conserved"] and before["supply"] == after["supply"]:
        return (f"GEUR conserved: supply {after['supply'] / unit:,.2f} = the sum of all balances, at the start and "
                f"at the end; over the run {moved}")
    return (f"GEUR NOT conserved: supply {before['supply'] / unit:,.2f} -> {after['supply'] / unit:,.2f}, balances "
            f"{sum(before['held'].values()) / unit:,.6f} -> {sum(after['held'].values()) / unit:,.6f}; {moved}")


def _clock(t: int) -> str:
    return time.strftime("%H:%M", time.gmtime(t))
