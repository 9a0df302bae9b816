"""Coupled zonal clearing: one welfare-maximising auction over the zones of a grid region.

European day-ahead markets clear all bidding zones together ("market coupling"): one optimisation
over every zone's bids and offers, subject to the capacity of the links between zones; each zone
gets one price; where a link is congested the prices differ and the difference times the flow, the
congestion rent, goes to the network operator. This module does that for a region of the DSO's
zones (feeders), as a pure function of the region's books: no storage, no clock, integers only.
The market pallet calls `clear` at gate closure and records what it returns.

The problem (all quantities in Wh, prices per kWh):
  - An ask (zone i, price a, q Wh) sells at the zone's price p_i if accepted.
  - A bid (zone j, all-in limit b, q Wh) pays p_j plus the zone's local grid fee f_j (the tariff
    grid_fee_per_kwh(j, j) of the interval's band): its value for energy is v = b - f_j.
  - Zone capacity: the Wh sold by a zone's asks is at most its export room, the Wh bought by its
    bids at most its import room (operating envelopes are already in the room), as in continuous
    trading.
  - Links: n_ij, the net flow from i to j (= -n_ji), stays within -room(j, i) <= n_ij <= room(i, j),
    so counter-flows net; a direction without a link has room 0.
  - Energy balance per zone: sold + imports = bought + exports.
  - Maximise welfare = sum(v x accepted bid Wh) - sum(a x accepted ask Wh).
Links cost nothing to use (the grid fee is the buyer zone's point tariff; scarcity on a link is priced
by the congestion rent instead of a route fee), so this is a min-cost flow with zero-cost links.

The algorithm: successive shortest paths, in integers. Orders are taken in price-time priority per
zone (asks by (price, id), bids by (price desc, id)); each step pairs the cheapest ask head of a zone
i with export room with the best bid head of a zone j with import room that i reaches through links
with room left (i reaches itself), choosing the pair with the largest gain v - a >= 0; ties: a pair
inside one zone first, then fewer links on the path, then the lower ask id, then the lower bid id.
The step moves min(ask left, bid left, i's export room, j's import room, the path's room) Wh along
the fewest-links path (neighbours visited in ascending zone id). Because links cost nothing and an
accepted order is never worth giving up (its zone serves orders in priority order), each step is a
shortest augmenting path of the flow network, so the result maximises welfare (the module's tests
check it against an LP solver). Pairs with gain 0 trade too: among the welfare maxima it moves more.
Zero-cost cycles of net flow, which ties can leave, are cancelled at the end (welfare unchanged).

Zone prices (`zone_prices`): any optimal flow has supporting prices. Each zone's price is bounded
  below by its accepted asks' prices, and by the values of bids left (partly) unfilled while the
  zone had import room; above by its accepted bids' values, and by the prices of asks left (partly)
  unfilled while the zone had export room; and by [0, max_price]. A link direction i -> j with room
  left forces p_j <= p_i (more could flow to j at no cost). Among the prices meeting all these, the
  rule takes, zone by zone, floor((lowest + highest) / 2) of the lowest and the highest price
  vectors meeting them (both exist: the constraints are differences and bounds), the midpoint rule
  of European coupling for indeterminate prices; rounding down keeps every constraint. Hence:
  every accepted order is in the money at its zone's price, a link with room in both directions
  joins two zones at one price (where nothing is congested every zone has the same price), and
  energy flows only from a zone to one at the same or a higher price. (`max_price` is raised to
  the highest order price if an order exceeds it, so the bounds always meet.)

Trades (`decompose`): bilateral trades, because settlement checks delivery meter by meter. Zones
  are visited in topological order of the net flows (ascending id among ready zones); a zone's
  energy is its accepted asks in priority order followed by what flowed in, in arrival order; its
  bids in priority order take from the front (so local energy serves local buyers first); what is
  left flows out, link by link in ascending id of the zone it goes to. A trade records the path
  its energy took. Per trade of w Wh from zone i to zone j: the seller gets cost(w, p_i), the buyer
  pays cost(w, p_j) + cost(w, f_j) <= cost(w, b), the DSO of the buyer's zone gets the grid fee
  cost(w, f_j), and each link (k, l) on the path earns cost(w, p_l) - cost(w, p_k) >= 0 of
  congestion rent, which sums to cost(w, p_j) - cost(w, p_i) along the path. A link's rent is the
  sum over the trades across it: (p_l - p_k) x flow, up to the rounding of each trade, always in the
  buyers' favour.

Rules the caller keeps (this module assumes them): no owner has both bids and asks in the region
for the interval (the market refuses the opposite side at placement), so no trade is a self-trade;
if any green-only bid takes part, non-green asks are left out (here), so every green-only bid meets
only green asks. Orders of owners no longer licensed, paused zones and zones without a local tariff
are left out by the caller. Bounded: each step exhausts an order, a zone's room or a path's room.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pallets.market_engine import GREEN, ORDER_ID, OWNER, PRICE, REMAINING, ask_priority, bid_priority, cost


class ClearingError(ArithmeticError):
    """The solver's own checks failed: its result would break a rule (a defect, never bad input:
    every input the market can build has a clearing). Raised before anything is returned, so the
    caller has changed nothing."""


@dataclass(frozen=True, slots=True)
class ZoneBook:
    """One zone of a region at gate closure: its resting orders (market_engine entries, best first
    or in any order) and what it may still sell and buy."""

    zone: int
    asks: list
    bids: list
    fee: int                  # the zone's local grid fee per kWh (point tariff of its buyers)
    import_room: int          # Wh the zone's bids may still buy
    export_room: int          # Wh the zone's asks may still sell


@dataclass(frozen=True, slots=True)
class CoupledFill:
    """One trade of a coupled clearing: `wh` from the seller's zone to the buyer's along `path`."""

    bid_id: int
    ask_id: int
    buyer: bytes
    seller: bytes
    from_zone: int
    to_zone: int
    wh: int
    seller_price: int         # p of the seller's zone: the trade's energy price
    buyer_price: int          # p of the buyer's zone
    fee_per_kwh: int          # the buyer zone's local grid fee
    path: tuple               # zones the energy crossed, seller's first, buyer's last


@dataclass(slots=True)
class ZoneResult:
    zone: int
    price: int
    bought_wh: int
    sold_wh: int


@dataclass(slots=True)
class LinkResult:
    from_zone: int
    to_zone: int
    flow_wh: int              # net flow in this direction (0 if it runs the other way)
    room_wh: int              # the direction's room before the clearing
    congested: bool           # the net flow reached the direction's room
    rent: int                 # congestion rent of the trades across it, stablecoin units


@dataclass(slots=True)
class Clearing:
    zones: list = field(default_factory=list)      # ZoneResult, ascending zone id
    links: list = field(default_factory=list)      # LinkResult, ascending (from, to)
    fills: list = field(default_factory=list)      # CoupledFill, in decomposition order
    accepted: dict = field(default_factory=dict)   # order id -> Wh accepted
    steps: int = 0                                 # augmentations made (work done)

    @property
    def rent(self) -> int:
        return sum(link.rent for link in self.links)


class _Region:
    """The flow network's state while clearing: per-zone order heads and rooms, link net flows."""

    def __init__(self, books: list[ZoneBook], link_room: dict) -> None:
        self.books = sorted(books, key=lambda b: b.zone)
        self.ids = [b.zone for b in self.books]
        self.index = {z: k for k, z in enumerate(self.ids)}
        n = len(self.ids)
        green_only = any(e[GREEN] for b in self.books for e in b.bids)
        self.asks = [sorted((e for e in b.asks if e[GREEN] or not green_only), key=ask_priority)
                     for b in self.books]
        self.bids = [sorted(b.bids, key=bid_priority) for b in self.books]
        self.ask_pos, self.bid_pos = [0] * n, [0] * n
        self.ask_left = [q[0][REMAINING] if q else 0 for q in self.asks]
        self.bid_left = [q[0][REMAINING] if q else 0 for q in self.bids]
        self.export_room = [max(0, b.export_room) for b in self.books]
        self.import_room = [max(0, b.import_room) for b in self.books]
        self.fee = [b.fee for b in self.books]
        self.room = [[0] * n for _ in range(n)]    # room of direction i -> j before clearing
        for (i, j), wh in sorted(link_room.items()):
            if i in self.index and j in self.index and i != j:
                self.room[self.index[i]][self.index[j]] = max(0, wh)
        self.net = [[0] * n for _ in range(n)]     # net flow i -> j (antisymmetric)
        self.accepted: dict[int, int] = {}
        self.steps = 0
        self._paths: list | None = None        # paths_from of every zone, until a link opens or closes

    def residual(self, i: int, j: int) -> int:
        return self.room[i][j] - self.net[i][j]

    def ask_head(self, i: int):
        return self.asks[i][self.ask_pos[i]] if self.ask_pos[i] < len(self.asks[i]) else None

    def bid_head(self, j: int):
        return self.bids[j][self.bid_pos[j]] if self.bid_pos[j] < len(self.bids[j]) else None

    def paths_from(self, i: int) -> dict[int, list[int]]:
        """Fewest-links paths from zone index i over directions with room, neighbours ascending."""
        paths = {i: [i]}
        queue = deque([i])
        n = len(self.ids)
        while queue:
            k = queue.popleft()
            for m in range(n):
                if m not in paths and self.residual(k, m) > 0:
                    paths[m] = paths[k] + [m]
                    queue.append(m)
        return paths

    def best_step(self):
        """The next augmentation (gain, path), or None when no pair has a gain >= 0."""
        if self._paths is None:
            self._paths = [self.paths_from(i) for i in range(len(self.ids))]
        best_key, best = None, None
        for i in range(len(self.ids)):
            a = self.ask_head(i)
            if a is None or self.export_room[i] == 0:
                continue
            for j, path in self._paths[i].items():
                b = self.bid_head(j)
                if b is None or self.import_room[j] == 0:
                    continue
                gain = b[PRICE] - self.fee[j] - a[PRICE]
                if gain < 0:
                    continue
                key = (-gain, len(path), a[ORDER_ID], b[ORDER_ID])
                if best_key is None or key < best_key:
                    best_key, best = key, path
        return best

    def augment(self, path: list[int]) -> None:
        i, j = path[0], path[-1]
        wh = min(self.ask_left[i], self.bid_left[j], self.export_room[i], self.import_room[j])
        for k, m in zip(path, path[1:]):
            wh = min(wh, self.residual(k, m))
        if wh <= 0:
            raise ClearingError("an augmenting path moved no energy")
        a, b = self.ask_head(i), self.bid_head(j)
        self.accepted[a[ORDER_ID]] = self.accepted.get(a[ORDER_ID], 0) + wh
        self.accepted[b[ORDER_ID]] = self.accepted.get(b[ORDER_ID], 0) + wh
        self.export_room[i] -= wh
        self.import_room[j] -= wh
        for k, m in zip(path, path[1:]):
            if self.residual(k, m) == wh or self.residual(m, k) == 0:
                self._paths = None              # k -> m closes or m -> k opens: paths change
            self.net[k][m] += wh
            self.net[m][k] -= wh
        self.ask_left[i] -= wh
        if self.ask_left[i] == 0:
            self.ask_pos[i] += 1
            nxt = self.ask_head(i)
            self.ask_left[i] = nxt[REMAINING] if nxt else 0
        self.bid_left[j] -= wh
        if self.bid_left[j] == 0:
            self.bid_pos[j] += 1
            nxt = self.bid_head(j)
            self.bid_left[j] = nxt[REMAINING] if nxt else 0
        self.steps += 1

    def cancel_cycles(self) -> None:
        """Remove circulations of net flow (zero cost: welfare and every zone's balance unchanged)."""
        n = len(self.ids)
        while True:
            cycle = self._find_cycle(n)
            if cycle is None:
                return
            wh = min(self.net[k][m] for k, m in zip(cycle, cycle[1:]))
            for k, m in zip(cycle, cycle[1:]):
                self.net[k][m] -= wh
                self.net[m][k] += wh

    def _find_cycle(self, n: int) -> list[int] | None:
        state = [0] * n                 # 0 new, 1 on the stack, 2 done
        stack: list[int] = []

        def visit(k: int) -> list[int] | None:
            state[k] = 1
            stack.append(k)
            for m in range(n):
                if self.net[k][m] > 0:
                    if state[m] == 1:
                        return stack[stack.index(m):] + [m]
                    if state[m] == 0:
                        found = visit(m)
                        if found:
                            return found
            stack.pop()
            state[k] = 2
            return None

        for k in range(n):
            if state[k] == 0:
                found = visit(k)
                if found:
                    return found
        return None


def zone_prices(r: _Region, max_price: int) -> list[int]:
    """The zone prices of an optimal flow (see "Zone prices" in the module doc)."""
    n = len(r.ids)
    top = max([max_price] + [e[PRICE] for side in (r.asks, r.bids) for q in side for e in q])
    lo, hi = [0] * n, [top] * n           # max_price, or a higher order price if one is given
    for z in range(n):
        for e in r.asks[z]:
            took = r.accepted.get(e[ORDER_ID], 0)
            if took > 0:
                lo[z] = max(lo[z], e[PRICE])
            if took < e[REMAINING] and r.export_room[z] > 0:
                hi[z] = min(hi[z], e[PRICE])
        for e in r.bids[z]:
            value = e[PRICE] - r.fee[z]
            took = r.accepted.get(e[ORDER_ID], 0)
            if took > 0:
                hi[z] = min(hi[z], value)
            if took < e[REMAINING] and r.import_room[z] > 0:
                lo[z] = max(lo[z], value)
    edges = [(i, j) for i in range(n) for j in range(n) if i != j and r.residual(i, j) > 0]
    lowest, highest = list(lo), list(hi)
    for _ in range(n):                  # p_j <= p_i: raise i to j's lowest, lower j to i's highest
        for i, j in edges:
            lowest[i] = max(lowest[i], lowest[j])
            highest[j] = min(highest[j], highest[i])
    for z in range(n):
        if lowest[z] > highest[z]:
            raise ClearingError(f"no supporting price for zone {r.ids[z]}: the flow is not optimal")
    return [(lowest[z] + highest[z]) // 2 for z in range(n)]


def _topological(r: _Region) -> list[int]:
    n = len(r.ids)
    indegree = [sum(1 for k in range(n) if r.net[k][m] > 0) for m in range(n)]
    ready = sorted(m for m in range(n) if indegree[m] == 0)
    order = []
    while ready:
        k = ready.pop(0)
        order.append(k)
        for m in range(n):
            if r.net[k][m] > 0:
                indegree[m] -= 1
                if indegree[m] == 0:
                    ready.append(m)
                    ready.sort()
    if len(order) != n:
        raise ClearingError("net flows left a cycle")
    return order


def decompose(r: _Region, prices: list[int]) -> list[CoupledFill]:
    """Bilateral trades along the net flows (see "Trades" in the module doc)."""
    n = len(r.ids)
    inflow: list[list] = [[] for _ in range(n)]      # parcels [ask entry, wh, path of zone indices]
    fills: list[CoupledFill] = []
    for z in _topological(r):
        pool = deque([e, r.accepted[e[ORDER_ID]], (z,)] for e in r.asks[z] if r.accepted.get(e[ORDER_ID]))
        pool.extend(inflow[z])
        for b in r.bids[z]:
            want = r.accepted.get(b[ORDER_ID], 0)
            while want > 0:
                if not pool:
                    raise ClearingError("a zone's buyers were given more than reached it")
                parcel = pool[0]
                wh = min(want, parcel[1])
                fills.append(_fill(r, prices, parcel[0], b, parcel[2], wh))
                want -= wh
                parcel[1] -= wh
                if parcel[1] == 0:
                    pool.popleft()
        for m in range(n):
            out = r.net[z][m]
            while out > 0:
                if not pool:
                    raise ClearingError("a link was given more than reached its zone")
                parcel = pool[0]
                wh = min(out, parcel[1])
                inflow[m].append([parcel[0], wh, parcel[2] + (m,)])
                out -= wh
                parcel[1] -= wh
                if parcel[1] == 0:
                    pool.popleft()
        if pool:
            raise ClearingError("a zone's energy balance does not hold")
    return fills


def _fill(r: _Region, prices: list[int], ask, bid, path: tuple, wh: int) -> CoupledFill:
    i, j = path[0], path[-1]
    return CoupledFill(bid[ORDER_ID], ask[ORDER_ID], bid[OWNER], ask[OWNER], r.ids[i], r.ids[j], wh,
                       prices[i], prices[j], r.fee[j], tuple(r.ids[k] for k in path))


def hop_rents(fill: CoupledFill, price_of: dict[int, int]) -> list[tuple[tuple[int, int], int]]:
    """The congestion rent a trade pays on each link of its path: cost(w, p_to) - cost(w, p_from)."""
    return [((k, m), cost(fill.wh, price_of[m]) - cost(fill.wh, price_of[k]))
            for k, m in zip(fill.path, fill.path[1:])]


def clear(books: list[ZoneBook], link_room: dict, max_price: int) -> Clearing:
    """Clear a region's books together. `link_room[(i, j)]` is the Wh that may still flow from zone i
    to zone j (netted against flows already recorded; absent: no link that way); `max_price` bounds
    the prices. Pure and deterministic; does not mutate its arguments."""
    r = _Region(books, link_room)
    while True:
        path = r.best_step()
        if path is None:
            break
        r.augment(path)
    r.cancel_cycles()
    prices = zone_prices(r, max_price)
    fills = decompose(r, prices)
    price_of = {r.ids[z]: prices[z] for z in range(len(r.ids))}
    rent: dict[tuple[int, int], int] = {}
    for f in fills:
        for link, amount in hop_rents(f, price_of):
            rent[link] = rent.get(link, 0) + amount
    out = Clearing(accepted=dict(sorted(r.accepted.items())), fills=fills, steps=r.steps)
    for z, book in enumerate(r.books):
        sold = sum(r.accepted.get(e[ORDER_ID], 0) for e in r.asks[z])
        bought = sum(r.accepted.get(e[ORDER_ID], 0) for e in r.bids[z])
        out.zones.append(ZoneResult(book.zone, prices[z], bought, sold))
    n = len(r.ids)
    for i in range(n):
        for j in range(n):
            if r.room[i][j] > 0:
                flow = max(0, r.net[i][j])
                out.links.append(LinkResult(r.ids[i], r.ids[j], flow, r.room[i][j],
                                            r.residual(i, j) == 0, rent.get((r.ids[i], r.ids[j]), 0)))
    return out
