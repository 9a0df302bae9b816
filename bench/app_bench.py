"""The web app's figures: first render, bundle size, and an order from click to finality.

    .venv/bin/python -m bench.app_bench [--runs 5] [--orders 10] [--block-time-ms 1000]

A real `gridchain --dev` node (its default block time unless given) serves the built app at /app/
on loopback, and Debian's headless chromium (tests/app_browser.py) opens it:

  first render   navigation start (the Performance API's time origin) to the household view showing
                 chain data (its order book depth, the public part every visitor sees), over
                 `--runs` page loads; the first with an empty cache, the rest with the cached
                 bundle. Also: unlocking an account to its balances showing (the unlock includes the
                 vault's argon2id), and navigation to the balances (both, with the bench's typing).
                 Limit 1 s.
  bundle         the JavaScript the page loads, app/dist/assets/*.js, gzipped (level 9). Limit 300 kB.
  order          a click on "place order" to `tx-status` saying "finalized", `--orders` asks by Bob
                 in his browser: p50 and p90, with "in block" beside it. Same-run reference: the
                 node's block time, and the same asks placed by the Python client library (signed
                 and submitted from Python, watched to finality). No limit; the ratios are printed.

Times inside the page come from the page's own clock (`performance.now()`), recorded by a
MutationObserver as the DOM changes, so the driver's round trips are not in them. Figures are
printed, never asserted.
"""
from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from app_browser import DIST, Browser, ensure_app_built, import_uri_account, unlock_account  # noqa: E402
from node_process import DevNode  # noqa: E402

from genesis.chain_spec import dev_meter_uri  # noqa: E402
from primitives.keys import Keypair, dev_keypair  # noqa: E402
from rpc.client import Client  # noqa: E402

FIRST_RENDER_LIMIT_MS = 1000
BUNDLE_LIMIT_BYTES = 300_000
PASSWORD = "a household's password"
INTERVAL_S = 900                       # the dev chain's delivery interval

#: at document start: the time (ms since navigation start) each milestone first shows
_MARKS_JS = """
window.__marks = {};
const mark = (name) => { if (!(name in window.__marks)) window.__marks[name] = performance.now(); };
new MutationObserver(() => {
  if (document.querySelector('[data-testid="nav-household"]')) mark('shell');
  const depth = document.querySelector('[data-testid="depth"]');
  if (depth && depth.textContent.trim()) mark('household');
  const geur = document.querySelector('[data-testid="balance-geur"]');
  if (geur && /\\d/.test(geur.textContent)) mark('balances');
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between the sorted values."""
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def bundle_size() -> tuple[int, int, int]:
    """(files, raw bytes, gzipped bytes) of app/dist/assets/*.js."""
    files = sorted((DIST / "assets").glob("*.js"))
    raw = sum(f.stat().st_size for f in files)
    gz = sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in files)
    return len(files), raw, gz


def marks_now(b: Browser, name: str) -> dict:
    return b.until(f"the {name} mark", lambda: (m := b.js("return window.__marks")) and name in m and m, timeout=30)


def first_renders(b: Browser, url: str, runs: int) -> list[dict]:
    """Load the page once with an empty cache and no account (then import Bob), then `runs` times
    more; per load the ms from navigation start to the shell and to the household view with data,
    and (with Bob stored) from the unlock click to the balances and from navigation to them."""
    b.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _MARKS_JS})
    out = []
    for i in range(runs + 1):
        b.open("about:blank")
        b.open(url)
        marks = marks_now(b, "household")
        row = {"shell": marks["shell"], "household": marks["household"],
               "dcl": b.js("return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")}
        if i == 0:
            import_uri_account(b, "bob", "//Bob", PASSWORD, dev_keypair("Bob").address())
        else:
            unlock_account(b, "bob", PASSWORD, js_click=True)
            marks = marks_now(b, "balances")
            row.update(balances=marks["balances"], unlock=marks["balances"] - b.js("return window.__unlockClick"))
        out.append(row)
        print(f"  load {i + 1}{' (empty cache, no account yet)' if i == 0 else ''}: shell {row['shell']:.0f} ms, "
              f"household view {row['household']:.0f} ms (DOMContentLoaded {row['dcl']:.0f} ms)"
              + (f", unlock->balances {row['unlock']:.0f} ms" if i else ""), flush=True)
    return out


def coming_interval(ahead: int = 3) -> int:
    """A delivery interval `ahead` intervals from now (the dev chain's clock is the wall clock)."""
    return (int(time.time()) // INTERVAL_S + ahead) * INTERVAL_S


def browser_orders(b: Browser, n: int, phases: list[float]) -> list[dict]:
    """Bob places `n` asks (0.1 kWh, distinct prices, so none trades) from the page, each click
    `phases[i]` s after the form is filled (a random point of the block period, so the clicks do
    not fall at one phase of the block timer); per order the ms from the click to "in block" and
    to "finalized"."""
    b.click("nav-household")
    out = []
    for i in range(n):
        b.select("order-side", value="ask")
        opts = b.until("coming intervals", lambda: [v for v, _ in b.options("order-interval") if v] or None)
        b.select("order-interval", value=opts[min(2, len(opts) - 1)])
        b.fill("order-price", f"{0.31 + i / 100:.2f}")
        b.fill("order-quantity", "0.1")
        time.sleep(phases[i])
        states = b.act_and_follow("order-submit", js_click=True, timeout=60)
        final = states[-1]
        if final["text"] != "finalized":
            raise RuntimeError(f"order {i + 1} ended {final['text']!r}: {states}")
        in_block = next((s["t"] for s in states if s["text"] == "in block"), float("nan"))
        out.append({"inBlock": in_block, "finalized": final["t"]})
        print(f"  order {i + 1}: in block {in_block:.0f} ms, finalized {final['t']:.0f} ms", flush=True)
    return out


def python_orders(url: str, n: int, phases: list[float]) -> list[float]:
    """The same kind of ask placed by Ferdie with the Python client, each after the same random
    pause as the page's: ms from building and signing to finalized."""
    ferdie = dev_keypair("Ferdie")
    meter = Keypair.from_uri(dev_meter_uri("Ferdie")).public_key
    out = []
    with Client(url) as c:
        for i in range(n):
            time.sleep(phases[i])
            t0 = time.perf_counter()
            xt = c.build_extrinsic(ferdie, "market", "place_ask", {
                "zone": 2, "interval_start": coming_interval(), "price_per_kwh": 310_000 + 10_000 * i,
                "quantity_wh": 100, "meter": meter})
            r = c.submit_and_watch(xt, until="finalized", timeout=60)
            if not r.success:
                raise RuntimeError(f"the Python client's order {i + 1} failed: {r.error}")
            out.append((time.perf_counter() - t0) * 1000)
    return out


def line(name: str, value: str, ratio: float | None = None, limit: str = "") -> None:
    tail = f"   {limit}: ratio {ratio:.2f}" if ratio is not None else ""
    print(f"  {name:<40} {value:<28}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="page loads for the first render (>= 1)")
    ap.add_argument("--orders", type=int, default=10, help="orders placed from the page (>= 1)")
    ap.add_argument("--block-time-ms", type=int, default=1000, help="the dev node's block time (its default)")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.orders < 1:
        ap.error("--runs and --orders must be at least 1")

    rng = random.Random(15)
    phases = [rng.uniform(0, args.block_time_ms / 1000) for _ in range(args.orders)]
    ensure_app_built()
    files, raw, gz = bundle_size()
    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        tmp_path = Path(tmp)
        with DevNode(tmp_path / "node", block_time_ms=args.block_time_ms) as node:
            node.wait_for_block(1)
            url = f"{node.url}/app/#/household"
            print(f"app_bench: dev node on {node.url} (block time {args.block_time_ms} ms), headless chromium, "
                  f"loopback", flush=True)
            with Browser("bench", tmp_path / "browser") as b:
                print("first render:", flush=True)
                loads = first_renders(b, url, args.runs)
                print("orders from the page:", flush=True)
                orders = browser_orders(b, args.orders, phases)
            print("orders from the Python client (reference):", flush=True)
            py = python_orders(node.url, args.orders, phases)

    household = [x["household"] for x in loads]
    unlocks = [x["unlock"] for x in loads[1:]]
    balances = [x["balances"] for x in loads[1:]]
    fin = [o["finalized"] for o in orders]
    blk = [o["inBlock"] for o in orders]
    block = args.block_time_ms
    print(f"\nresults ({args.runs + 1} page loads, {args.orders} orders; ratio = figure / limit or reference):")
    line("first render of the household view, p50", f"{statistics.median(household):.0f} ms",
         statistics.median(household) / FIRST_RENDER_LIMIT_MS, "limit 1,000 ms")
    line("  worst load", f"{max(household):.0f} ms", max(household) / FIRST_RENDER_LIMIT_MS, "limit 1,000 ms")
    line("  empty cache (first load, no account)", f"{household[0]:.0f} ms", household[0] / FIRST_RENDER_LIMIT_MS,
         "limit 1,000 ms")
    line("unlock to balances (argon2id), p50", f"{statistics.median(unlocks):.0f} ms",
         statistics.median(unlocks) / FIRST_RENDER_LIMIT_MS, "limit 1,000 ms")
    line("navigation to balances (with typing), p50", f"{statistics.median(balances):.0f} ms")
    line("JavaScript bundle, gzipped", f"{gz / 1000:.1f} kB ({files} files, {raw / 1000:.0f} kB raw)",
         gz / BUNDLE_LIMIT_BYTES, "limit 300 kB")
    line("click to finalized, p50", f"{statistics.median(fin):.0f} ms", statistics.median(fin) / block,
         f"block time {block} ms")
    line("click to finalized, p90", f"{pct(fin, 0.9):.0f} ms", pct(fin, 0.9) / block, f"block time {block} ms")
    line("click to in block, p50", f"{statistics.median(blk):.0f} ms", statistics.median(blk) / block,
         f"block time {block} ms")
    line("Python client, sign to finalized, p50", f"{statistics.median(py):.0f} ms", statistics.median(py) / block,
         f"block time {block} ms")
    line("page / Python client, p50", f"{statistics.median(fin) / statistics.median(py):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
