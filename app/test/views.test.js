// The operator and network views' pure parts: reading an extrinsic for the explorer, the regulator's
// CSV, the DSO's alerts and heatmap share, licences by the metadata's role constants, the latency median.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ss58Encode } from '../src/chain/index.js';
import { authorOf, decodeExtrinsic, heightOf } from '../src/views/network/decode.js';
import { median } from '../src/views/network/index.js';
import { alertOf } from '../src/views/operator/alerts.js';
import { licenceFrom, roleBits } from '../src/views/operator/checks.js';
import { REPORT_COLUMNS, tradesCsv } from '../src/views/operator/regulator.js';
import { usage } from '../src/views/operator/zones.js';
import { vectors } from './_vectors.js';

const toAddress = (bytes) => ss58Encode(bytes);

test('the explorer reads the protocol vector extrinsic: its hash, signer and call named by the metadata', () => {
  const V = vectors().protocol;
  const x = decodeExtrinsic(V.extrinsic, 1, vectors().metadata, toAddress);
  assert.equal(x.hash, V['extrinsic.hash']);
  assert.equal(x.signer, V['alice.ss58']);
  assert.equal(`${x.pallet}.${x.call}`, 'balances.transfer');
  assert.equal(x.nonce, 0);
  assert.equal(Number(x.args.amount), 1000000);
  assert.equal(x.error, undefined);
});

test('an extrinsic that does not decode is still listed by its hash, with the reason', () => {
  const x = decodeExtrinsic('0x01', 0, vectors().metadata, toAddress);
  assert.match(x.hash, /^0x[0-9a-f]{64}$/);
  assert.match(x.error, /^cannot decode/);
});

test('a block author is the PreRuntime digest key; heights come as integers or hex', () => {
  const header = vectors().headerJson;
  const author = authorOf(header, toAddress);
  assert.equal(author, vectors().protocol['alice.ss58']);
  assert.equal(heightOf({ number: '0x1f' }), 31);
  assert.equal(heightOf({ number: 31 }), 31);
});

test('the regulator CSV has the columns of `gridchain report trades`, outcome merged, fields quoted as csv does', () => {
  const csv = tradesCsv([
    { tradeId: 7, intervalStart: 900, seller: 'fMa', buyer: 'fMb', fromZone: 1, toZone: 2, wh: 400, pricePerKwh: 100000,
      feePerKwh: 35000, amount: 40000, feeAmount: 14000, status: 'settled',
      outcome: { deliveredWh: 300, paidSeller: 30000, feeToDso: 10500, refundBuyer: 13500, penalty: 5000,
        atFault: 'seller', certificatesRetiredWh: 0 } },
    { tradeId: 8, intervalStart: 900, seller: 'a,"b"', buyer: 'fMb', fromZone: 1, toZone: 1, wh: 1, pricePerKwh: 1,
      feePerKwh: 0, amount: 1, feeAmount: 0, status: 'matched', outcome: null },
  ]);
  const lines = csv.split('\r\n');
  assert.equal(lines[0], REPORT_COLUMNS.join(','));
  assert.equal(lines[1], '7,900,fMa,fMb,1,2,400,100000,35000,40000,14000,settled,300,30000,10500,13500,5000,seller,0');
  assert.equal(lines[2], '8,900,"a,""b""",fMb,1,1,1,1,0,1,0,matched,,,,,,,');
  assert.equal(lines[3], '');
});

test('metering events raise the alerts `gridchain admin dso alerts` lists, and only those', () => {
  const meter = `0x${'ab'.repeat(32)}`;
  assert.equal(alertOf(5, { pallet: 'metering', name: 'MeterSuspended', fields: { meter, zone: 1, reason: 'rogue' } }).kind, 'rogue-meter');
  assert.equal(alertOf(5, { pallet: 'metering', name: 'MeterSuspended', fields: { meter, zone: 1, reason: 'operator' } }), null);
  const bad = alertOf(6, { pallet: 'metering', name: 'ReadingAccepted',
    fields: { meter, interval_start: 900, import_delta_wh: 0, export_delta_wh: 10000, plausible: false } });
  assert.equal(bad.kind, 'implausible-reading');
  assert.match(bad.what, /0 Wh in, 10 kWh out/);
  assert.equal(alertOf(6, { pallet: 'metering', name: 'ReadingAccepted', fields: { meter, plausible: true } }), null);
  assert.equal(alertOf(7, { pallet: 'metering', name: 'IntervalsMissed', fields: { meter, from_interval: 900, count: 2 } }).kind,
    'missed-intervals');
  assert.equal(alertOf(7, { pallet: 'grid', name: 'IntervalsMissed', fields: {} }), null);
});

test('a zone-interval cell shows the larger share of import or export capacity used, capped at 1', () => {
  assert.equal(usage({ importedWh: 25, importCapacityWh: 100, exportedWh: 50, exportCapacityWh: 100 }), 0.5);
  assert.equal(usage({ importedWh: 0, importCapacityWh: 0, exportedWh: 0, exportCapacityWh: 0 }), 0);
  assert.equal(usage({ importedWh: 10, importCapacityWh: 0, exportedWh: 0, exportCapacityWh: 100 }), 1);
  assert.equal(usage({ importedWh: 300, importCapacityWh: 100, exportedWh: 0, exportCapacityWh: 100 }), 1);
});

test('licences are named by the identity pallet\'s role_ and status_ constants', () => {
  const chain = { metadata: vectors().metadata };
  const names = roleBits(chain).map(([n]) => n);
  assert.ok(names.includes('dso') && names.includes('registrar'), names.join(','));
  const bit = (n) => roleBits(chain).find(([x]) => x === n)[1];
  const status = (n) => vectors().metadata.pallets.find((p) => p.name === 'identity').constants[`status_${n}`];
  assert.deepEqual(licenceFrom(chain, { roles: bit('dso') | bit('registrar'), status: status('suspended') }),
    { roles: ['dso', 'registrar'], status: 'suspended' });
});

test('the finality latency median', () => {
  assert.equal(median([]), 0);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 3);
});
