"""The web app in real browsers (Debian's headless chromium via Selenium) against a real dev node
that serves it at /app/: Bob imports his key and sells to Charlie, who buys in a second browser with
its own profile, and both see the trade with its state; Dave, the DSO, pauses a zone and Bob's order
form shows it paused; and each bad input of the issue is refused in the page with nothing sent
(the account's nonce, read from the node, unchanged): a wrong password, a malformed mnemonic, a price
out of bounds, an unaffordable escrow, a role the account does not hold, an unreachable node or one
on another chain (a banner, then a reconnection). The order form is checked at phone width.

One node and one browser per user serve the whole module, in order (later tests rely on the accounts
imported earlier). Screenshots of each view go to the module's output folder (its path is printed);
a failed test leaves each browser's screenshot, HTML and console log in the test's own tmp folder.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from app_browser import Browser, ensure_app_built, import_uri_account, open_account_forms, unlock_account
from node_process import DevNode

from primitives.keys import Keypair, dev_keypair
from rpc.client import AsyncClient, Client
from wallet.chain import ChainState

pytestmark = pytest.mark.slow

PASSWORD = "a household's password"
BOB, CHARLIE, DAVE, ALICE = (dev_keypair(n) for n in ("Bob", "Charlie", "Dave", "Alice"))
GEUR = 10**6
STABLECOIN = 1                            # GEUR's asset id on the dev chain
ZONE = 1                                  # Bob's and Charlie's feeder on the dev chain; Dave is its DSO
BLOCK_MS = 500
#: a BIP39 phrase of valid words whose checksum is wrong (twelve times "abandon")
BAD_CHECKSUM = " ".join(["abandon"] * 12)

_browsers: list[Browser] = []


# -------------------------------------------------------------------------------------------------
# fixtures: one node, one browser per user
# -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where every browser's screenshots and console logs go."""
    d = tmp_path_factory.mktemp("app-browser")
    print(f"web app screenshots and browser logs: {d}")
    return d


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[DevNode]:
    ensure_app_built()
    with DevNode(tmp_path_factory.mktemp("app-node") / "base", block_time_ms=BLOCK_MS) as n:
        n.wait_for_block(1)
        with urllib.request.urlopen(f"{n.url}/app/", timeout=10) as r:
            assert r.status == 200 and b'id="app"' in r.read(), "the node does not serve the built app at /app/"
        yield n


@pytest.fixture(scope="module")
def client(node: DevNode) -> Iterator[Client]:
    with Client(node.url) as c:
        yield c


@pytest.fixture(autouse=True)
def evidence_on_failure(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """When the test fails, save each open browser's page and console log in the test's tmp dir."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        for b in _browsers:
            b.save_failure(request.node.name, tmp_path)


def new_browser(name: str, shots: Path) -> Browser:
    b = Browser(name, shots)
    _browsers.append(b)
    return b


def close_browser(b: Browser) -> None:
    b.quit()
    if b in _browsers:
        _browsers.remove(b)


def app_url(node: DevNode, route: str = "household") -> str:
    return f"{node.url}/app/#/{route}"


def shows_account(kp: Keypair) -> Callable[[str], bool]:
    """The `current-account` text names this account (by the start of its address)."""
    return lambda text: kp.address()[:8] in text


def unlock(b: Browser, name: str, password: str) -> None:
    unlock_account(b, name, password)


def import_dev_account(b: Browser, node: DevNode, name: str) -> None:
    """Open the app and import `//Name` with the password; the import unlocks it."""
    b.open(app_url(node))
    import_uri_account(b, name.lower(), f"//{name}", PASSWORD, dev_keypair(name).address())


@pytest.fixture(scope="module")
def bob(node: DevNode, shots: Path) -> Iterator[Browser]:
    b = new_browser("bob", shots)
    try:
        import_dev_account(b, node, "Bob")
        yield b
    finally:
        close_browser(b)


@pytest.fixture(scope="module")
def charlie(node: DevNode, shots: Path) -> Iterator[Browser]:
    b = new_browser("charlie", shots)
    try:
        import_dev_account(b, node, "Charlie")
        yield b
    finally:
        close_browser(b)


@pytest.fixture(scope="module")
def dave(node: DevNode, shots: Path) -> Iterator[Browser]:
    b = new_browser("dave", shots)
    try:
        import_dev_account(b, node, "Dave")
        yield b
    finally:
        close_browser(b)


# -------------------------------------------------------------------------------------------------
# helpers over the order form and the chain
# -------------------------------------------------------------------------------------------------

def choose_zone(b: Browser, zone: int) -> None:
    opts = b.until(f"zone {zone} in the order form",
                   lambda: next((v for v, t in b.options("order-zone") if v == str(zone)), None)
                   or next((v for v, t in b.options("order-zone") if str(zone) in t.split()), None))
    b.select("order-zone", value=opts)


def fill_order(b: Browser, side: str, price: str, quantity: str, interval: str | None = None) -> str:
    """Fill Bob's or Charlie's order form in zone 1; returns the chosen interval's option value
    (the third coming interval unless `interval` is given, well before its gate closes)."""
    b.click("nav-household")
    b.select("order-side", value=side)
    choose_zone(b, ZONE)
    if interval is None:
        opts = b.until("coming intervals", lambda: [v for v, _ in b.options("order-interval") if v] or None)
        interval = opts[min(2, len(opts) - 1)]
    b.select("order-interval", value=interval)
    b.fill("order-price", price)
    b.fill("order-quantity", quantity)
    return interval


def nonce(client: Client, kp) -> int:
    return client.next_nonce(kp.public_key)


def assert_nothing_sent(node: DevNode, client: Client, kp, before: int) -> None:
    """Two blocks later the account's nonce is what it was: the page sent no transaction."""
    node.wait_for_block(node.best_number() + 2)
    assert nonce(client, kp) == before, "the page sent a transaction it should have refused"


def zone_paused(node: DevNode, zone: int) -> bool:
    return next(z for z in node.rpc("energy_zones") if z["zone"] == zone)["paused"]


def stablecoin(node: DevNode, kp) -> int:
    """The account's GEUR (smallest units) at the best block, read through the wallet's
    metadata-driven storage access."""
    async def read() -> int:
        async with AsyncClient(node.url) as c:
            state = ChainState(c, await c.metadata())
            return await state.read("balances", "asset_balance", STABLECOIN, kp.public_key) or 0
    return asyncio.run(read())


def first_amount(text: str) -> float | None:
    """The first number in a text such as "1.000000 GEUR" or "GEUR 1,250.5" (None if there is none)."""
    m = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    return None if m is None else float(m.group().replace(",", ""))


def transfer_geur(client: Client, src, dest, amount: int) -> None:
    xt = client.build_extrinsic(src, "balances", "transfer_asset", {"asset": STABLECOIN, "dest": dest.public_key,
                                                                     "amount": amount})
    r = client.submit_and_watch(xt, until="inBlock")
    assert r.success, r


# -------------------------------------------------------------------------------------------------
# the flows of the issue
# -------------------------------------------------------------------------------------------------

def test_bob_sells_to_charlie_and_both_see_the_trade_with_its_state(node, client, bob, charlie):
    bob.el("balance-geur")
    bob.screenshot("household")
    interval = fill_order(bob, "ask", "0.10", "1")
    bob.el("order-escrow")
    states = bob.act_and_follow("order-submit")
    assert states[-1]["text"] == "finalized", states
    assert any(s["text"] == "signing" for s in states), states
    mine = [o for o in node.rpc("energy_orders", {"account": BOB.address()}) if o["side"] == "ask"]
    assert [(o["pricePerKwh"], o["remainingWh"], o["zone"]) for o in mine] == [(100_000, 1_000, ZONE)], mine
    bob.el("order-row")

    fill_order(charlie, "bid", "0.20", "0.4", interval=interval)
    escrow = charlie.text("order-escrow")
    assert any(ch.isdigit() for ch in escrow), f"no escrow shown before signing: {escrow!r}"
    states = charlie.act_and_follow("order-submit")
    assert states[-1]["text"] == "finalized", states

    trades = node.rpc("energy_trades", {"account": CHARLIE.address()})
    assert len(trades) == 1, trades
    t = trades[0]
    assert (t["seller"], t["buyer"], t["wh"], t["pricePerKwh"]) == (BOB.address(), CHARLIE.address(), 400, 100_000)
    for b in (charlie, bob):
        row = b.until(f"trade {t['tradeId']} listed",
                      lambda b=b: next((r for r in b.visible("trade-row")
                                        if r.get_attribute("data-trade-id") == str(t["tradeId"])), None), timeout=30)
        b.until(f"trade {t['tradeId']} with its state {t['status']!r}", lambda row=row: t["status"] in row.text.lower())
        b.screenshot("trade")


def test_dave_pauses_the_zone_and_bobs_order_form_shows_it_paused(node, bob, dave):
    dave.click("nav-operator")
    row = dave.until(f"zone {ZONE}'s row", lambda: next((r for r in dave.visible("dso-zone-row")
                                                          if r.get_attribute("data-zone") == str(ZONE)), None))
    dave.screenshot("operator")
    reason = dave.visible("dso-pause-reason", row) and "dso-pause-reason"
    dave.fill(reason or "dso-pause-reason", "transformer fault on the feeder", within=row if reason else None)
    states = dave.act_and_follow("dso-pause", within=row)
    assert states[-1]["text"] == "finalized", states
    assert zone_paused(node, ZONE)

    fill_order(bob, "ask", "0.10", "1")
    bob.el("order-zone-paused", timeout=20)
    bob.until("the order's submit disabled", lambda: not bob.el("order-submit").is_enabled())
    bob.screenshot("zone-paused")

    row = next(r for r in dave.visible("dso-zone-row") if r.get_attribute("data-zone") == str(ZONE))
    states = dave.act_and_follow("dso-resume", within=row)
    assert states[-1]["text"] == "finalized", states
    assert not zone_paused(node, ZONE)
    bob.wait_gone("order-zone-paused", timeout=20)
    bob.until("the order's submit enabled again", lambda: bob.el("order-submit").is_enabled())


# -------------------------------------------------------------------------------------------------
# bad input: a message in the page, nothing sent
# -------------------------------------------------------------------------------------------------

def test_a_wrong_password_is_refused(node, client, bob):
    before = nonce(client, BOB)
    bob.click("lock")
    bob.until("Bob locked", lambda: not any(BOB.address()[:8] in e.text for e in bob.visible("current-account")))
    unlock(bob, "bob", "not the password")
    assert "password" in bob.text("account-error", timeout=30).lower()
    assert not any(BOB.address()[:8] in e.text for e in bob.visible("current-account"))
    bob.screenshot("wrong-password")
    unlock(bob, "bob", PASSWORD)
    bob.wait_text("current-account", shows_account(BOB), timeout=30)
    assert nonce(client, BOB) == before


def test_no_key_mnemonic_or_password_leaves_the_browser(node, client, shots):
    """A fresh profile imports a new mnemonic and //Ferdie, and Ferdie signs and places an ask:
    nothing the page sent (every WebSocket frame and request, from chromium's own network log)
    holds the phrase or any three of its words in a row, a seed (hex, either case), the URI or the
    password; the extrinsic it sent does carry Ferdie's public key, so the log is the real traffic."""
    fresh, phrase = Keypair.generate()
    ferdie = dev_keypair("Ferdie")
    secret_password = "correct horse battery staple 42"
    b = new_browser("secrets", shots)
    try:
        b.open(app_url(node))
        open_account_forms(b)
        b.fill("import-name", "fresh")
        b.fill("import-mnemonic", phrase)
        b.fill("import-password", secret_password)
        b.click("import-submit")
        b.wait_text("current-account", fresh.address(), timeout=30)
        import_uri_account(b, "ferdie", "//Ferdie", secret_password, ferdie.address())
        before = nonce(client, ferdie)
        fill_order(b, "ask", "0.12", "0.5")
        choose_zone(b, 2)                                  # Ferdie's meter is in zone 2
        b.fill("order-price", "0.12")
        b.fill("order-quantity", "0.5")
        states = b.act_and_follow("order-submit")
        assert states[-1]["text"] == "finalized", states
        assert nonce(client, ferdie) == before + 1
        sent = "\n".join(b.sent_over_network()).lower()
    finally:
        close_browser(b)
    assert ferdie.public_key.hex() in sent, "the network log does not hold the page's extrinsic"
    words = phrase.split()
    leaks = [w for w in (phrase, *(" ".join(words[i:i + 3]) for i in range(len(words) - 2)),
                         fresh.seed.hex(), ferdie.seed.hex(), "//ferdie", secret_password) if w.lower() in sent]
    assert leaks == [], f"sent to the node: {leaks}"


def test_a_malformed_mnemonic_is_refused(node, bob):
    open_account_forms(bob)
    accounts = bob.options("unlock-account")
    for phrase in (BAD_CHECKSUM, "abandon abandon notaword abandon abandon abandon abandon abandon abandon "
                   "abandon abandon about", "abandon about"):
        bob.fill("import-name", "typo")
        bob.fill("import-mnemonic", phrase)
        bob.fill("import-password", PASSWORD)
        bob.click("import-submit")
        bob.wait_text("account-error", "mnemonic", timeout=10)
    assert bob.options("unlock-account") == accounts, "a malformed mnemonic was stored as an account"
    bob.wait_text("current-account", shows_account(BOB))
    bob.screenshot("bad-mnemonic")
    bob.fill("import-mnemonic", "")
    bob.fill("import-name", "")
    bob.fill("import-password", "")


@pytest.mark.parametrize("price,quantity", [("10.5", "1"), ("0", "1"), ("0.1", "1001"), ("0.1", "0")],
                         ids=["price-above-max", "price-zero", "quantity-above-max", "quantity-zero"])
def test_an_order_out_of_bounds_is_refused_before_signing(node, client, bob, price, quantity):
    before = nonce(client, BOB)
    tx_before = [e.text for e in bob.visible("tx-status")]
    fill_order(bob, "ask", price, quantity)
    submit = bob.el("order-submit")
    if submit.is_enabled():
        submit.click()
    bob.el("order-error")
    assert_nothing_sent(node, client, BOB, before)
    assert [e.text for e in bob.visible("tx-status")] == tx_before, "the page started signing"


def test_an_order_beyond_the_meter_rating_is_refused_before_signing(node, client, bob):
    """3 kWh from Bob's 10 kW meter in a 15-minute interval (at most 2.5 kWh, the market's
    wh_in_interval): refused in the page with a sentence naming the rating, nothing sent."""
    before = nonce(client, BOB)
    orders = len(node.rpc("energy_orders", {"account": BOB.address()}))
    fill_order(bob, "ask", "0.10", "3")
    bob.click("order-submit")
    error = bob.el("order-error")
    assert "rated 10000 W" in error.text and "2.5 kWh" in error.text, error.text
    assert_nothing_sent(node, client, BOB, before)
    assert len(node.rpc("energy_orders", {"account": BOB.address()})) == orders


def test_an_unaffordable_escrow_is_refused_before_signing(node, client, bob):
    """Bob keeps 1 GEUR (the rest lent to Alice for the test) and bids 20 GEUR's worth."""
    lent = stablecoin(node, BOB) - GEUR
    transfer_geur(client, BOB, ALICE, lent)
    try:
        bob.wait_text("balance-geur", lambda t: first_amount(t) == 1.0, timeout=30)
        before = nonce(client, BOB)
        fill_order(bob, "bid", "10", "2")
        bob.el("order-escrow")
        submit = bob.el("order-submit")
        if submit.is_enabled():
            submit.click()
        bob.el("order-error")
        assert_nothing_sent(node, client, BOB, before)
        bob.screenshot("unaffordable")
    finally:
        transfer_geur(client, ALICE, BOB, lent)



def test_bob_is_offered_no_operator_view_or_controls(node, bob, dave):
    """Bob is a prosumer: no operator tab, and the operator view opened by its address renders none
    of the DSO's or registrar's controls (Dave, the DSO, has both)."""
    bob.click("nav-household")
    dave.el("nav-operator")
    assert not bob.visible("nav-operator"), "Bob, who holds no operator role, is offered the operator view"
    bob.js("window.location.hash = '#/operator'")
    bob.until("the operator view", lambda: bob.driver.current_url.endswith("#/operator"))
    bob.wait_text("operator-roles", "prosumer")          # the view has read his licence
    bob.until("the zones' rows", lambda: len(bob.visible("dso-zone-row")) >= 2)
    shown = [t for t in ("dso-pause", "dso-resume", "dso-pause-reason", "registrar-license", "registrar-suspend",
                         "registrar-revoke", "registrar-reinstate") if bob.visible(t)]
    assert not shown, f"Bob, who holds no operator role, is offered {shown}"
    bob.screenshot("operator-as-bob")
    bob.click("nav-household")


def test_the_order_form_is_usable_at_phone_width(node, bob):
    bob.set_viewport(390, 844, mobile=True)
    try:
        bob.click("nav-household")
        fill_order(bob, "ask", "0.10", "1")
        for testid in ("order-side", "order-zone", "order-interval", "order-price", "order-quantity", "order-submit"):
            e = bob.el(testid)
            bob.js("arguments[0].scrollIntoView({block: 'center'})", e)
            r = bob.js("const r = arguments[0].getBoundingClientRect();"
                       "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width,"
                       " height: r.height, w: innerWidth, h: innerHeight};", e)
            assert r["width"] > 0 and r["height"] > 0, (testid, r)
            assert 0 <= r["left"] and r["right"] <= r["w"] + 0.5, f"{testid} sticks out of the phone's width: {r}"
            assert 0 <= r["top"] and r["bottom"] <= r["h"] + 0.5, f"{testid} not within the viewport: {r}"
        assert bob.el("order-submit").is_enabled()
        bob.screenshot("household-phone")
    finally:
        bob.clear_viewport()


def test_the_household_view_fits_a_phone_without_zooming_out(node, bob):
    """At 390 px (with his orders and trades listed) nothing in the household view is wider than the
    phone: wide tables scroll inside their own box, so the phone need not shrink the whole page."""
    bob.set_viewport(390, 844, mobile=True)
    try:
        bob.click("nav-household")
        bob.el("trade-row")
        try:
            bob.until("the page laid out at the phone's width", lambda: bob.js("return window.innerWidth") == 390,
                      timeout=5)
        except AssertionError as e:
            raise AssertionError(f"{e}; wider than 390 px: {overflowing(bob, 390)}") from None
    finally:
        bob.clear_viewport()


def overflowing(b: Browser, width: int) -> list[str]:
    """The innermost elements reaching past `width` CSS px (what makes a phone zoom out)."""
    return b.js("""return [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > arguments[0] + 1)
        .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > arguments[0] + 1))
        .map(e => `${e.tagName.toLowerCase()}.${e.className}${e.dataset.testid ? '[' + e.dataset.testid + ']' : ''}`
                  + ` right ${Math.round(e.getBoundingClientRect().right)}`
                  + ` (in "${(e.closest('.card, section')?.querySelector('h2, h3')?.textContent || '').trim()}")`)
        .slice(0, 12)""", width)


def test_network_view_shows_the_heights_and_every_view_is_photographed(node, bob, dave, shots):
    dave.click("nav-operator")
    dave.el("dso-zone-row")
    dave.screenshot("operator")
    bob.click("nav-network")
    best = node.best_number()
    bob.wait_text("best-height", lambda t: (first_amount(t) or 0) >= best, timeout=20)
    bob.wait_text("finalized-height", lambda t: first_amount(t) is not None, timeout=20)
    bob.screenshot("network")
    bob.click("nav-household")
    bob.el("balance-geur")
    bob.screenshot("household")
    pngs = sorted(p.name for p in shots.glob("*.png"))
    for view in ("household", "operator", "network"):
        assert any(view in name for name in pngs), f"no screenshot of the {view} view in {shots}: {pngs}"


def test_an_unreachable_node_shows_a_banner_and_the_page_reconnects(tmp_path_factory, shots):
    """A second dev node serves the page, then stops: the banner says so; started again on the same
    port and base path, the page reconnects and the banner goes. Replaced by a node of another
    chain on that port, the banner says it is another chain."""
    base = tmp_path_factory.mktemp("app-node2")
    second = DevNode(base / "base", block_time_ms=BLOCK_MS)
    b = new_browser("offline", shots)
    other: DevNode | None = None
    try:
        second.start()
        b.open(app_url(second))
        b.el("nav-household")
        b.wait_gone("conn-banner", timeout=20)
        second.stop()
        b.wait_text("conn-banner", lambda t: any(w in t.lower() for w in ("reconnecting", "unreachable")), timeout=20)
        b.screenshot("unreachable")
        second.start()
        b.wait_gone("conn-banner", timeout=30)
        second.stop()
        other = DevNode(base / "other", block_time_ms=BLOCK_MS, port=second.port,
                        command=("run", "--chain", "local"))
        other.start()
        b.wait_text("conn-banner", lambda t: "chain" in t.lower(), timeout=30)
        b.screenshot("another-chain")
    finally:
        close_browser(b)
        for n in (other, second):
            if n is not None:
                n.stop()
