/**
 * The checks `gridchain admin` runs before it signs (wallet/admin.py `require_role`, wallet/dso.py
 * `require_zone_dso` and `require_meter_manager`), in the same sentences: a refusal here sends
 * nothing and pays no fee. The pallets check again in their block; their sentence is shown then.
 */

/** Whether two SS58 addresses name the same account (the same string, in this chain's format). */
export function sameAccount(a, b) {
  return Boolean(a) && Boolean(b) && String(a) === String(b);
}

/** identity's constants named `<prefix><name>` as `[name, value]`, in value order (`role_dso` -> ['dso', 4]). */
function identityConstants(chain, prefix) {
  const consts = (chain.metadata?.pallets || []).find((p) => p.name === 'identity')?.constants || {};
  return Object.entries(consts).filter(([k, v]) => k.startsWith(prefix) && Number.isInteger(v))
    .map(([k, v]) => [k.slice(prefix.length), v]).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
}

/** The chain's role names and bits, from identity's `role_<name>` constants, in bit order. */
export function roleBits(chain) {
  return identityConstants(chain, 'role_');
}

/** A participant record (`identity.participants`) as `{ roles: [names], status: name }`, as `chain.roles` words it. */
export function licenceFrom(chain, p) {
  const roles = roleBits(chain).filter(([, bit]) => bit !== 0 && (p.roles & bit) === bit).map(([n]) => n);
  const status = identityConstants(chain, 'status_').find(([, v]) => v === p.status);
  return { roles, status: status ? status[0] : String(p.status) };
}

/** The licence of `address`: `{ roles: [...], status }`, or null for none (the library's `chain.roles`). */
export async function licenceOf(chain, address) {
  return chain.roles(address);
}

/** Whether a licence is active and holds `role`. */
export function holds(licence, role) {
  return Boolean(licence) && licence.status === 'active' && (licence.roles || []).includes(role);
}

/** Throws the sentence `gridchain admin` prints unless `address` holds an active licence in `role`. */
export async function requireRole(chain, address, role) {
  const lic = await licenceOf(chain, address);
  if (!lic) throw new Error(`account ${address} holds no licence, so not the ${role} role; nothing was sent`);
  if (!(lic.roles || []).includes(role)) {
    throw new Error(`account ${address} does not hold the ${role} role (it holds: `
      + `${(lic.roles || []).join(', ') || 'none'}); nothing was sent`);
  }
  if (lic.status !== 'active') {
    throw new Error(`account ${address} holds the ${role} role, but its licence is ${lic.status}; nothing was sent`);
  }
  return lic;
}

/** The zone as `energy_zones` gives it; throws when there is no such zone. */
export async function zoneOf(chain, zoneId) {
  const zones = await chain.call('energy_zones', []);
  const z = zones.find((x) => x.zone === Number(zoneId));
  if (!z) throw new Error(`no zone ${zoneId} on this chain`);
  return z;
}

/** The zone, if `address` is its DSO with an active DSO licence (grid's `ensure_zone_dso`). */
export async function requireZoneDso(chain, address, zoneId) {
  await requireRole(chain, address, 'dso');
  const z = await zoneOf(chain, zoneId);
  if (!sameAccount(z.dso, address)) {
    throw new Error(`account ${address} is not the DSO of zone ${zoneId} (its DSO is ${z.dso}); nothing was sent`);
  }
  return z;
}

/** `address` may manage the zone's meters: its licensed DSO, or a licensed registrar (metering's `_ensure_manager`). */
export async function requireMeterManager(chain, address, zoneId) {
  const z = await zoneOf(chain, zoneId);
  if (sameAccount(z.dso, address)) {
    await requireRole(chain, address, 'dso');
    return;
  }
  const lic = await licenceOf(chain, address);
  if (holds(lic, 'registrar')) return;
  const held = lic ? `it holds: ${(lic.roles || []).join(', ') || 'none'}` : 'it holds no licence';
  throw new Error(`account ${address} is neither the DSO of zone ${zoneId} nor a licensed registrar (${held}), `
    + 'who alone manage its meters; nothing was sent');
}
