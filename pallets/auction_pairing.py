"""The call auction's pairing: the most energy the no-self-trade and green rules allow, in priority.

Pure and deterministic (integers only; owners are compared as bytes; no iteration over unordered
collections). `market_engine.allocate` hands it the in-the-money orders of one cleared book, each
side already in priority order, as (owner, wh, green) triples; it returns which bid trades how much
with which ask. Nothing here knows prices: every pair trades at the cleared price.

The rules, for an ask a and a bid b:
  - a pair may trade iff owner(a) != owner(b) (no self-trade), and a green-only bid meets only
    green asks;
  - total volume: the maximum over all pairings that respect the rule (and at most `volume`),
    whatever the orders' ids: it depends only on the quantities, owners and green flags;
  - which orders trade: the asks' fill vector, read in ask priority order, is the lexicographically
    greatest among the maximum-volume pairings: the first ask is filled as far as any
    maximum-volume pairing fills it, then the second as far as possible given the first, and so on
    (an ask is passed over only where filling it would cost volume). Then the bids' fill vector,
    in bid priority order, is the lexicographically greatest among the pairings that fill the
    asks so. Where `volume` does not cut the volume below the rule's maximum, that is the bids'
    own greatest too (any maximum flow's supply side and any maximum flow's demand side are met
    by one flow together: the Mendelsohn-Dulmage theorem); where it does, asks choose first;
  - who trades with whom: bids in priority order; each takes asks in priority order, from each as
    much as can be taken while the fills still to pair can still be paired. When no owner is on
    both sides and no bid is green-only, this is the plain greedy pairing.

Why it is exact and bounded. The volume question is a bipartite max-flow (asks -> compatible bids),
and its minimum cut has a closed form here. With S, D the supply and demand, g and n the green and
non-green supply, G and N the green-only and other demand, and g_o, n_o, G_o, N_o owner o's parts:

    max volume = min(S, D, S - n + N,
                     min_o (S + N - n_o - N_o),
                     min_o (S + D - g_o - n_o - G_o - N_o),
                     min_o (S - n + D - g_o - G_o))

(each term is a cut: keep on the source side nothing; o's non-green asks; all of o's asks; all
non-green asks; all non-green asks and o's green ones; every ask). The fill vectors come from the
greedy algorithm of polymatroids (fill of the i-th order = max volume with the first i orders of
its side minus max volume with the first i - 1), O(n + m) with running maxima. The pairing step
keeps every cut above the volume still to pair: a fill of q on (a, b) lowers a cut's slack by q
exactly when a is outside the cut's kept set and b next to it, so the largest q is the least such
slack; the owners' weights per kind of cut sit in heaps with their best few cached. Each step of
the pairing exhausts an ask or a bid, or makes one of the 3 x owners + 1 cuts tight for good (a
slack never grows), so there are at most asks + bids + 3 x owners + 1 steps, each O(log owners)
amortised (bench/call_auction_alloc.py: about 15 ms for 500 x 500 in CPython).
"""
from __future__ import annotations

import heapq
from collections.abc import Sequence

#: one order of a side, in that side's priority order: (owner, wh, green). `green` is, for an ask,
#: "the seller's meter is a generation meter"; for a bid, "green only".
Order = tuple[bytes, int, bool]


class _Totals:
    """Supply and demand per owner and green class, with the running maxima the cut terms need."""

    def __init__(self) -> None:
        self.owner: dict[bytes, list[int]] = {}      # owner -> [g_o, n_o, G_o, N_o]
        self.parts = [0, 0, 0, 0]                    # g, n, G, N
        self.max_nN = self.max_all = self.max_gG = 0

    def add(self, owner: bytes, wh: int, green: bool, is_ask: bool) -> None:
        """Add an order; the maxima only grow, so they are kept in O(1)."""
        part = (0 if green else 1) if is_ask else (2 if green else 3)
        o = self.owner.setdefault(owner, [0, 0, 0, 0])
        o[part] += wh
        self.parts[part] += wh
        self.max_nN = max(self.max_nN, o[1] + o[3])
        self.max_all = max(self.max_all, o[0] + o[1] + o[2] + o[3])
        self.max_gG = max(self.max_gG, o[0] + o[2])

    def max_volume(self) -> int:
        """The closed-form minimum cut (module docstring)."""
        g, n, G, N = self.parts
        S, D = g + n, G + N
        return min(S, D, S - n + N, S + N - self.max_nN, S + D - self.max_all, S - n + D - self.max_gG)


def max_volume(asks: Sequence[Order], bids: Sequence[Order]) -> int:
    """The most Wh that asks and bids can trade under the no-self-trade and green rules."""
    t = _Totals()
    for owner, wh, green in asks:
        t.add(owner, wh, green, True)
    for owner, wh, green in bids:
        t.add(owner, wh, green, False)
    return t.max_volume()


def priority_fills(side: Sequence[Order], other: Sequence[Order], side_is_ask: bool, volume: int) -> list[int]:
    """Each order's fill on `side`: the lexicographically greatest fill vector (in the side's
    priority order) among the pairings of maximum volume, capped at `volume` (polymatroid greedy)."""
    t = _Totals()
    for owner, wh, green in other:
        t.add(owner, wh, green, not side_is_ask)
    fills, before = [], min(volume, t.max_volume())
    for owner, wh, green in side:
        t.add(owner, wh, green, side_is_ask)
        now = min(volume, t.max_volume())
        fills.append(now - before)
        before = now
    return fills


class _OwnerHeap:
    """Owners by a weight that only falls: a max-heap whose stale entries (an owner's earlier,
    larger weight) are dropped when met, and a cache of the greatest few owners, sorted, which
    is always the true top of that length (a query excludes at most two owners, so three do)."""

    def __init__(self, weight: dict[bytes, int]) -> None:
        self.weight = weight
        self.heap = [(-w, o) for o, w in weight.items()]
        heapq.heapify(self.heap)
        self.best: list[tuple[int, bytes]] = []       # (weight, owner), greatest first
        self._refill()

    def _refill(self) -> None:
        """The greatest four owners, from the heap."""
        taken: list[tuple[int, bytes]] = []
        while self.heap and len(taken) < 4:
            neg, o = heapq.heappop(self.heap)
            if -neg == self.weight[o]:                # else stale: weights only fall
                taken.append((neg, o))
        for e in taken:
            heapq.heappush(self.heap, e)
        self.best = [(-neg, o) for neg, o in taken]

    def set(self, owner: bytes, weight: int) -> None:
        """Lower an owner's weight. Outside the cache it stays outside; inside, it keeps its place
        unless it falls to the cache's end, where an owner outside might now pass it."""
        if weight == self.weight[owner]:
            return
        self.weight[owner] = weight
        heapq.heappush(self.heap, (-weight, owner))
        for i, (_, o) in enumerate(self.best):
            if o == owner:
                self.best[i] = (weight, owner)
                self.best.sort(key=lambda e: (-e[0], e[1]))
                if self.best[-1][1] == owner and len(self.best) < len(self.weight):
                    self.best.pop()
                    if len(self.best) < 3:
                        self._refill()
                break

    def top(self, exclude: tuple) -> int | None:
        """The greatest weight of an owner not in `exclude` (at most two owners), None if none."""
        for w, o in self.best:
            if o not in exclude:
                return w
        return None

    def tight(self, weight: int, not_owner: bytes | None) -> list[bytes]:
        """The owners other than `not_owner` whose weight is `weight`, the greatest possible (a cut
        with no slack left); at most two of them while a pairing is feasible."""
        return [o for w, o in self.best if o != not_owner and w == weight]


class _Pairing:
    """The residual problem while pairing: what each order and owner still has to trade."""

    def __init__(self, asks: Sequence[Order], bids: Sequence[Order], x: list[int], y: list[int]) -> None:
        self.asks, self.bids, self.x, self.y = asks, bids, list(x), list(y)
        self.t = _Totals()
        for (owner, _, green), wh in zip(asks, x):
            self.t.add(owner, wh, green, True)
        for (owner, _, green), wh in zip(bids, y):
            self.t.add(owner, wh, green, False)
        part = self.t.owner
        owners = sorted(part)
        self.w_nN = _OwnerHeap({o: part[o][1] + part[o][3] for o in owners})
        self.w_all = _OwnerHeap({o: sum(part[o]) for o in owners})
        self.w_gG = _OwnerHeap({o: part[o][0] + part[o][2] for o in owners})
        # asks by class (owner, green), each a queue in priority order with a head; per green
        # class a heap of the heads (ask index = priority rank, so the least index is the best)
        self.queue: dict[tuple[bytes, bool], list[int]] = {}
        for i, (owner, _, green) in enumerate(asks):
            if x[i] > 0:
                self.queue.setdefault((owner, green), []).append(i)
        self.head = {c: 0 for c in self.queue}
        self.heads: dict[bool, list] = {True: [], False: []}
        for c in sorted(self.queue):
            heapq.heappush(self.heads[c[1]], (self.queue[c][0], c[0]))

    # --- which asks a bid may take now ------------------------------------------------------
    def class_head(self, owner: bytes, green: bool) -> int | None:
        q = self.queue.get((owner, green))
        if q is None or self.head[(owner, green)] >= len(q):
            return None
        return q[self.head[(owner, green)]]

    def best_head(self, green: bool, not_owner: bytes) -> int | None:
        """The best ask with something left among the asks of this green class, not of `not_owner`."""
        heap, taken, best = self.heads[green], [], None
        while heap and self.class_head(heap[0][1], green) != heap[0][0]:
            heapq.heappop(heap)                       # stale: that class's head has moved on
        if heap and heap[0][1] != not_owner:
            return heap[0][0]
        while heap:
            i, o = heapq.heappop(heap)
            if self.class_head(o, green) != i:
                continue                              # stale
            taken.append((i, o))
            if o != not_owner:
                best = i
                break
        for e in taken:
            heapq.heappush(heap, e)
        return best

    def candidate(self, b: int) -> int:
        """The first ask in priority order that bid b may take something from now: compatible,
        and outside every tight cut that would bind the pair (see `room`)."""
        ob, green_only = self.bids[b][0], self.bids[b][2]
        g, n, _, N = self.t.parts
        R = g + n
        types = [True] if green_only else [False, True]
        # tight cuts, each with what it leaves bid b (the cut's name is its kept set of asks):
        # "all of o's asks": every unit left has o on one side, so b takes only o's asks
        tight_all = self.w_all.tight(R, ob)
        only_owner = tight_all[0] if tight_all else None
        green_owner: bytes | None = None
        if not green_only:
            # "o's non-green asks": other owners' bids that take any ask are exactly what o's
            # non-green asks need, so b takes only those
            tight_nN = self.w_nN.tight(N, ob)
            if tight_nN:
                assert only_owner in (None, tight_nN[0]), "no feasible pairing left"
                only_owner, types = tight_nN[0], [False]
            if N == n:                                # "every non-green ask": likewise, for all
                types = [False]
        if g == 0:
            types = [t for t in types if not t]
        else:
            # "every non-green ask and o's green ones": other owners' green asks are exactly
            # what o's green-only bids need, so b (unless it is one) takes green only from o
            tight_gG = self.w_gG.tight(g, ob if green_only else None)
            if len(tight_gG) >= 2:
                types = [t for t in types if not t]
            elif tight_gG:
                green_owner = tight_gG[0]
        found: list[int] = []
        for green in types:
            if green and green_owner is not None:
                if green_owner != ob and only_owner in (None, green_owner):
                    i = self.class_head(green_owner, True)
                    found += [] if i is None else [i]
            elif only_owner is not None:
                i = self.class_head(only_owner, green)
                found += [] if i is None else [i]
            else:
                i = self.best_head(green, ob)
                found += [] if i is None else [i]
        assert found, "no feasible pairing left"
        return min(found)

    # --- how much a pair may trade now ------------------------------------------------------
    def room(self, a: int, b: int) -> int:
        """The most ask a and bid b can trade now with the rest still pairable: the least slack of
        the cuts that a fill on (a, b) tightens (a outside the kept asks, b next to them)."""
        oa, ask_green = self.asks[a][0], self.asks[a][2]
        ob, green_only = self.bids[b][0], self.bids[b][2]
        if oa == ob or (green_only and not ask_green):
            return 0
        g, n, _, N = self.t.parts
        R = g + n
        q = min(self.x[a], self.y[b])
        if not green_only and ask_green:
            q = min(q, N - n)                         # keep: every non-green ask
        if not green_only:                            # keep: owner o's non-green asks
            w = self.w_nN.top((ob,) if ask_green else (ob, oa))
            q = q if w is None else min(q, N - w)
        w = self.w_all.top((oa, ob))                  # keep: all of owner o's asks
        q = q if w is None else min(q, R - w)
        if ask_green:                                 # keep: every non-green ask and o's green ones
            w = self.w_gG.top((oa, ob) if green_only else (oa,))
            q = q if w is None else min(q, g - w)
        return max(q, 0)

    def fill(self, a: int, b: int, wh: int) -> None:
        oa, ask_green = self.asks[a][0], self.asks[a][2]
        ob, green_only = self.bids[b][0], self.bids[b][2]
        self.x[a] -= wh
        self.y[b] -= wh
        ap, bp = (0 if ask_green else 1), (2 if green_only else 3)
        self.t.owner[oa][ap] -= wh
        self.t.owner[ob][bp] -= wh
        self.t.parts[ap] -= wh
        self.t.parts[bp] -= wh
        for o, green_part in ((oa, ask_green), (ob, green_only)):
            part = self.t.owner[o]
            self.w_all.set(o, part[0] + part[1] + part[2] + part[3])
            if green_part:
                self.w_gG.set(o, part[0] + part[2])
            else:
                self.w_nN.set(o, part[1] + part[3])
        if self.x[a] == 0:
            c = (oa, ask_green)
            self.head[c] += 1
            i = self.class_head(*c)
            if i is not None:
                heapq.heappush(self.heads[ask_green], (i, oa))


def pair(asks: Sequence[Order], bids: Sequence[Order], volume: int) -> list[tuple[int, int, int]]:
    """(bid index, ask index, wh) triples of the call auction's pairing (module rules), bids in
    priority order and each bid's asks in priority order. `asks` and `bids` are the in-the-money
    orders of each side, in priority order; the total is max_volume(asks, bids) capped at `volume`."""
    if volume <= 0 or not asks or not bids:
        return []
    x = priority_fills(asks, bids, True, volume)
    y = priority_fills(bids, [(owner, wh, green) for (owner, _, green), wh in zip(asks, x)], False, volume)
    p = _Pairing(asks, bids, x, y)
    out: list[tuple[int, int, int]] = []
    for b in range(len(bids)):
        while p.y[b] > 0:
            a = p.candidate(b)
            wh = p.room(a, b)
            assert wh > 0, "pairing stalled"
            p.fill(a, b, wh)
            out.append((b, a, wh))
    return out
