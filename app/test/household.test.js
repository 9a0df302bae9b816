// The household order form's checks before signing (views/household/checks.js), against the
// runtime's own metadata constants (interval, gate closure, price and quantity bounds): each input
// the issue lists as refused in the page gets its sentence, and a good order gets none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escrowFor, meterIntervalWh, orderProblem, parseTerms } from '../src/views/household/checks.js';
import { comingIntervals } from '../src/views/household/data.js';
import { vectors } from './_vectors.js';

/** What the checks read of a Chain: metadata constants (the real runtime's) and the coin. */
function chainFromMetadata() {
  const pallets = vectors().metadata.pallets;
  return {
    constant: (pallet, name) => pallets.find((p) => p.name === pallet).constants[name],
    properties: { stablecoin: { assetId: 1, symbol: 'GEUR', decimals: 6 } },
  };
}

const chain = chainFromMetadata();
const STEP = Number(chain.constant('grid', 'interval_s'));
const GATE = Number(chain.constant('market', 'gate_closure_s'));
const NOW = 1_800_000_000 - (1_800_000_000 % STEP) + 60;          // a minute into an interval
const ZONES = [{ zone: 1, name: 'feeder-north', paused: false }, { zone: 2, name: 'feeder-south', paused: true }];
const METERS = [{ meter: '0x' + '11'.repeat(32), zone: 1, kind: 'bidirectional', status: 'active', ratedPowerW: 10_000 }];
const NEXT = comingIntervals(chain, NOW, 4)[0];

function problem(overrides = {}) {
  const side = overrides.side ?? 'bid';
  const terms = parseTerms(chain, overrides.price ?? '0.10', overrides.quantity ?? '1', side);
  return orderProblem(chain, { side, zone: 1, interval: NEXT, terms, zones: ZONES, meters: METERS,
    free: 1_000_000_000, nowS: NOW, ...overrides });
}

test('a good bid and a good ask pass, and the offered intervals all have an open gate', () => {
  assert.equal(problem(), null);
  assert.equal(problem({ side: 'ask' }), null);
  for (const t of comingIntervals(chain, NOW, 8)) assert.ok(t - GATE > NOW, `interval ${t} offered after its gate`);
});

test('a past interval, and one whose gate has closed, are refused', () => {
  const started = NOW - (NOW % STEP);
  assert.match(problem({ interval: started }), /has closed: choose a coming interval/);
  assert.match(problem({ interval: started - STEP }), /has closed/);
  const gateJustClosed = started + STEP;                       // NOW + GATE is past its gate
  assert.match(problem({ interval: gateJustClosed, nowS: gateJustClosed - GATE }), /has closed/);
});

test('prices and quantities outside the market bounds are refused with the bounds', () => {
  assert.match(problem({ price: '0' }), /price must lie between/);
  assert.match(problem({ price: '10.000001' }), /price must lie between/);
  assert.match(problem({ quantity: '0' }), /quantity must lie between/);
  assert.match(problem({ quantity: '1000.001' }), /quantity must lie between/);
  assert.match(problem({ price: 'cheap' }), /./);
});

test('a paused zone is refused', () => {
  assert.match(problem({ zone: 2 }), /is paused by its DSO/);
});

test("a quantity beyond the meter's rating in one interval is refused; exactly the rating passes", () => {
  const most = meterIntervalWh(10_000, STEP);                   // 10 kW for 15 minutes
  assert.equal(most, 2500n);
  assert.equal(problem({ side: 'ask', quantity: '2.5' }), null);
  assert.match(problem({ side: 'ask', quantity: '2.501' }), /rated 10000 W: it can move at most 2\.5 kWh/);
});

test('an escrow above the free balance is refused; exactly the free balance passes', () => {
  const escrow = escrowFor(1000, 100_000);                      // 1 kWh at 0.10
  assert.equal(escrow, 100_000n);
  assert.equal(problem({ free: 100_000 }), null);
  assert.match(problem({ free: 99_999 }), /is more than your free/);
});

test('an account without a meter that can serve the side is refused', () => {
  assert.match(problem({ meters: [] }), /no active meter in zone 1/);
  const importOnly = [{ ...METERS[0], kind: 'import' }];
  assert.match(problem({ side: 'ask', meters: importOnly }), /export \(needed to sell\)/);
});
