"""Capacity: the energy trades may move out of and into a zone, and over a link, in one interval
(see "Capacity" in the package docstring).

`Room` is the one place that reads the limits (grid.capacity_for, grid.link_limit_w) against the
flows already traded, and the one writer of `flows` and `link_flows`: continuous matching and the
call auction both reserve through it, so a change to how capacity is counted is made here once."""
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
            self.link_flow[route] = link_flows.get((*route, self.t))
        return self.link_flow[route]

    def __call__(self, from_zone: int, to_zone: int, wh: int) -> int:
        src, dst = self._flow(from_zone), self._flow(to_zone)
        export_room = self._zone_cap(from_zone)[1] - src[1]
        import_room = self._zone_cap(to_zone)[0] - dst[0]
        granted = min(wh, export_room, import_room)
        if from_zone != to_zone:
            route = (from_zone, to_zone)
            granted = min(granted, self._link_cap(route) - self._link(route))
        if granted <= 0:
            return 0
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
            link_flows.insert((*route, self.t), wh)
