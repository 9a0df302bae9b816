"""Capacity: the energy trades may move out of and into a zone, and over a link, in one interval
(see "Capacity" in the package docstring).

`Room` is the one place that reads the limits (grid.capacity_for, grid.link_limit_w) against the
flows already traded, and the one writer of `flows` and `link_flows`: continuous matching and the
call auction both reserve through it, so a change to how capacity is counted is made here once.

A link's flows are netted: energy sent from i to j and from j to i over one link in the same
interval cancels out on the wire, so the room for a trade from i to j is
    limit(i, j) - (flow(i, j) - flow(j, i))
where flow is the gross Wh traded in that direction (what `link_flows` stores, and the RPC shows).
A trade against the prevailing direction frees room for one along it; the net flow in either
direction never exceeds that direction's limit (a limit lowered later leaves room <= 0 along it,
while trades against it still fit). Without a link from i to j (no limit set) the room is 0,
whatever flows the other way. Zone flows are not netted: a zone's export and import are separate
envelopes."""
from __future__ import annotations

from pallets import grid
from pallets.market.state import Flow, flows, link_flows


def wh_in_interval(power_w: int) -> int:
    """Energy a power can move in one interval, rounded down (never over capacity)."""
    return power_w * grid.Config.interval_s // 3600


class Room:
    """Capacity left in one interval, reserved fill by fill (market_engine's `room_for`)."""

    def __init__(self, interval_start: int) -> None:
        self.t = interval_start
        self.zone_flow: dict[int, list[int]] = {}      # zone -> [import_wh, export_wh]
        self.link_flow: dict[tuple[int, int], int] = {}
        self.link_stored: dict[tuple[int, int], int] = {}  # route -> gross Wh as read (netting reads both ways)
        self.zone_cap: dict[int, tuple[int, int]] = {}  # zone -> (import_wh, export_wh) allowed
        self.link_cap: dict[tuple[int, int], int] = {}
        self.reserved = False

    def _zone_cap(self, zone: int) -> tuple[int, int]:
        cap = self.zone_cap.get(zone)
        if cap is None:
            imp_w, exp_w = grid.capacity_for(zone, self.t)
            cap = self.zone_cap[zone] = (wh_in_interval(imp_w), wh_in_interval(exp_w))
        return cap

    def _link_cap(self, route: tuple[int, int]) -> int:
        cap = self.link_cap.get(route)
        if cap is None:
            cap = self.link_cap[route] = wh_in_interval(grid.link_limit_w(*route) or 0)
        return cap

    def _flow(self, zone: int) -> list[int]:
        f = self.zone_flow.get(zone)
        if f is None:
            stored = flows.get((zone, self.t))
            f = self.zone_flow[zone] = [stored.import_wh, stored.export_wh]
        return f

    def _link(self, route: tuple[int, int]) -> int:
        if route not in self.link_flow:
            self.link_flow[route] = self.link_stored[route] = link_flows.get((*route, self.t))
        return self.link_flow[route]

    def link_room(self, route: tuple[int, int]) -> int:
        """Wh a new trade may add along the link: its limit less the net flow that way (may be < 0
        after a limit was lowered); 0 without a link that way."""
        cap = self._link_cap(route)
        if cap == 0:
            return 0
        return cap - (self._link(route) - self._link((route[1], route[0])))

    def left(self, from_zone: int, to_zone: int) -> int:
        """Wh a trade from `from_zone` to `to_zone` could still get, without reserving it."""
        export_room = self._zone_cap(from_zone)[1] - self._flow(from_zone)[1]
        import_room = self._zone_cap(to_zone)[0] - self._flow(to_zone)[0]
        room = min(export_room, import_room)
        if from_zone != to_zone:
            room = min(room, self.link_room((from_zone, to_zone)))
        return max(room, 0)

    def __call__(self, from_zone: int, to_zone: int, wh: int) -> int:
        """Grant up to `wh` from `from_zone` to `to_zone` and reserve it (market_engine's room_for)."""
        granted = min(wh, self.left(from_zone, to_zone))
        if granted <= 0:
            return 0
        src, dst = self._flow(from_zone), self._flow(to_zone)
        self.reserved = True
        src[1] += granted
        dst[0] += granted
        if from_zone != to_zone:
            self.link_flow[(from_zone, to_zone)] += granted
        return granted

    def store(self) -> None:
        if not self.reserved:
            return
        for zone, (imp, exp) in sorted(self.zone_flow.items()):
            flows.insert((zone, self.t), Flow(imp, exp))
        for route, wh in sorted(self.link_flow.items()):
            if wh != self.link_stored[route]:
                link_flows.insert((*route, self.t), wh)
