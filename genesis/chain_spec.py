"""Chain specs, in Substrate's shape: name, id, chainType, bootNodes, properties, genesis.

A spec carries either `genesis.runtimeGenesis.config` (per-pallet config, readable) or, in its raw
form, `genesis.raw.top` (hex storage key -> hex value). The raw form is what every node hashes into
its genesis block, so a spec distributed raw gives the same genesis hash on every machine whatever
the builder version; `build-spec --raw` produces it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primitives.keys import DEV_ACCOUNT_NAMES as DEV_ACCOUNTS
from primitives.keys import Keypair, dev_keypair
from primitives.ss58 import GRIDCHAIN_SS58_PREFIX

TOKEN_SYMBOL = "GRID"
TOKEN_DECIMALS = 9
STABLECOIN_ASSET_ID = 1
STABLECOIN_SYMBOL = "GEUR"
STABLECOIN_DECIMALS = 6

#: one million GRID per dev account; fees are a few thousandths of a GRID
DEV_NATIVE_BALANCE = 1_000_000 * 10**TOKEN_DECIMALS
#: 10,000 GEUR of stablecoin per dev household
DEV_STABLE_BALANCE = 10_000 * 10**STABLECOIN_DECIMALS


class ChainSpecError(ValueError):
    """A chain spec that cannot be loaded or built."""


def _addr(name: str) -> str:
    return dev_keypair(name).address()


def _properties() -> dict:
    return {"tokenSymbol": TOKEN_SYMBOL, "tokenDecimals": TOKEN_DECIMALS, "ss58Format": GRIDCHAIN_SS58_PREFIX,
            "stablecoin": {"assetId": STABLECOIN_ASSET_ID, "symbol": STABLECOIN_SYMBOL,
                           "decimals": STABLECOIN_DECIMALS}}


#: who is who on the development chains: Alice the regulator's registrar (and sudo on dev), Dave the DSO,
#: Eve the stablecoin issuer, Bob and Ferdie households with rooftop PV, Charlie a household without
DEV_ROLES = {"Alice": ["registrar"], "Bob": ["prosumer"], "Charlie": ["consumer"], "Dave": ["dso"],
             "Eve": ["issuer"], "Ferdie": ["prosumer"]}

#: grid fees in stablecoin units per kWh: within a feeder, and between the two feeders; band 1 is the
#: 07:00-22:00 peak (UTC)
DEV_TARIFFS = {"local": (20_000, 40_000), "cross": (35_000, 60_000)}


def _grid_config(dso: str) -> dict:
    zones = [(1, "feeder-north"), (2, "feeder-south")]
    tariffs = []
    for a, _ in zones:
        for b, _ in zones:
            off, peak = DEV_TARIFFS["local" if a == b else "cross"]
            tariffs += [[a, b, 0, off], [a, b, 1, peak]]
    return {
        "tou_bands": [[0, 0], [7 * 3600, 1], [22 * 3600, 0]],
        "zones": [{"id": z, "dso": _addr(dso), "name": name, "import_capacity_w": 250_000,
                   "export_capacity_w": 250_000} for z, name in zones],
        "links": [[1, 2, 100_000], [2, 1, 100_000]],
        "tariffs": tariffs,
    }


#: certified smart meters of the dev households: (owner, zone, kind, rated power W); a meter's key is
#: the dev URI `//<Owner>//meter` (kind 0 import-only, 1 export-only, 2 bidirectional)
DEV_METERS = [("Bob", 1, 2, 10_000), ("Charlie", 1, 0, 15_000), ("Ferdie", 2, 2, 8_000)]


def dev_meter_uri(owner: str) -> str:
    """The secret URI of a dev household's meter key."""
    return f"//{owner}//meter"


def _metering_config() -> dict:
    return {"meters": [{"meter": "0x" + Keypair.from_uri(dev_meter_uri(owner)).public_key.hex(), "owner": _addr(owner),
                        "zone": zone, "kind": kind, "rated_power_w": rated}
                       for owner, zone, kind, rated in DEV_METERS]}


def validator_uri(name: str) -> str:
    """The secret URI of a dev validator's key: `//Alice` on the dev chain, `//Validator<i>` on local ones."""
    return f"//{name}"


def _validators_config(names: list[str]) -> dict:
    """Each validator's account and BLS key (derived from the same secret, see primitives.bls), with
    its proof of possession."""
    from primitives import bls  # noqa: PLC0415
    out = []
    for n in names:
        kp = Keypair.from_uri(validator_uri(n))
        sk = bls.secret_from_seed(kp.seed)
        out.append({"account": kp.address(), "bls_public_key": "0x" + bls.sk_to_pk(sk).hex(),
                    "bls_proof_of_possession": "0x" + bls.pop_prove(sk).hex()})
    return {"validators": out}


#: council of the dev chain: one registrar and one DSO, so both must agree (more than half of two)
DEV_COUNCIL = ["Alice", "Dave"]
#: motions' periods in blocks: votes are taken for 50 blocks; a passed motion waits 2 blocks
COUNCIL_PERIODS = {"voting_period": 50, "enactment_delay": 2}
#: thresholds of the local and deployment councils: two thirds for the validator set, a runtime
#: upgrade and the council itself, a simple majority for the rest (a tariff framework, zones)
COUNCIL_THRESHOLDS = {"*": ">1/2", "validators": "2/3", "upgrades": "2/3", "council": "2/3",
                      "grid.force_set_tariff": ">1/2"}


def _council_config(names: list[str], thresholds: dict[str, str]) -> dict:
    """The council of dev-account names (registrar, DSO, validator operators by their URI name)."""
    return {"members": [Keypair.from_uri(validator_uri(n)).address() for n in names],
            **COUNCIL_PERIODS, "thresholds": dict(thresholds)}


def _genesis_config(authorities: list[str], endowed: list[str], households: list[str], issuer: str,
                    sudo: str | None, council: dict) -> dict:
    roles = {n: list(r) for n, r in DEV_ROLES.items()}
    for a in authorities:
        roles.setdefault(a, []).append("validator_operator")
    return {
        "metering": _metering_config(),
        # undelivered energy costs the party at fault 0.05 GEUR per kWh, paid to the other party
        "settlement": {"penalty_per_kwh": 50_000},
        "identity": {"participants": [{"address": Keypair.from_uri(validator_uri(n)).address(), "roles": r}
                                      for n, r in roles.items()]},
        "grid": _grid_config("Dave"),
        "authorship": {"authorities": [_addr(a) for a in authorities]},
        "validators": _validators_config(authorities),
        "balances": {
            "balances": [[_addr(n), DEV_NATIVE_BALANCE] for n in endowed],
            "assets": [{"id": STABLECOIN_ASSET_ID, "symbol": STABLECOIN_SYMBOL,
                        "decimals": STABLECOIN_DECIMALS, "issuer": _addr(issuer),
                        "balances": [[_addr(n), DEV_STABLE_BALANCE] for n in households]}],
        },
        "council": council,
        **({"sudo": {"key": _addr(sudo)}} if sudo is not None else {}),
    }


def _dev_accounts_spec(name: str, chain_id: str, chain_type: str, authorities: list[str], engine: str,
                      sudo: str | None, council: dict) -> dict:
    """A spec on the development accounts: all six funded, Eve the stablecoin issuer, Alice to Dave
    households holding stablecoin; `authorities` are the validators (funded too: they sit on the
    council and pay fees for its votes); `sudo` None for no sudo key."""
    endowed = list(DEV_ACCOUNTS) + [a for a in authorities if a not in DEV_ACCOUNTS]
    return {
        "name": name, "id": chain_id, "chainType": chain_type, "bootNodes": [],
        "protocolId": "grid", "properties": _properties(),
        "consensus": {"engine": engine, "blockTimeMs": 1000},
        "genesis": {"runtimeGenesis": {"config": _genesis_config(
            authorities=authorities, endowed=endowed, households=list(DEV_ACCOUNTS[:4]),
            issuer="Eve", sudo=sudo, council=council)}},
    }


def dev_spec() -> dict:
    """Single-node development chain: Alice (also the registrar) is the one validator and seals
    blocks alone (`dev-seal`). Alice holds the sudo key for convenience; a council of Alice and
    Dave can govern it too, as a deployment's council would."""
    return _dev_accounts_spec("Development", "dev", "Development", ["Alice"], "dev-seal", sudo="Alice",
                              council=_council_config(DEV_COUNCIL, {"*": ">1/2"}))


def local_spec(validators: int = 4) -> dict:
    """Local multi-validator testnet under BFT consensus: validator operators `//Validator1` ..
    `//Validator<n>`, licensed at genesis, with the dev chain's households, DSO and issuer. No sudo
    key: root calls go through the council of Alice (registrar), Dave (DSO) and the validator
    operators (see COUNCIL_THRESHOLDS)."""
    if not 1 <= validators <= 100:
        raise ChainSpecError("a local testnet has 1 to 100 validators")
    names = [f"Validator{i}" for i in range(1, validators + 1)]
    return _dev_accounts_spec("Local Testnet", "local_testnet", "Local", names, "bft", sudo=None,
                              council=_council_config(DEV_COUNCIL + names, COUNCIL_THRESHOLDS))


@dataclass(frozen=True)
class Household:
    """A simulated household of a neighbourhood chain: its account is the secret URI `//<name>`,
    its meter `//<name>//meter` (bidirectional for a prosumer, import-only for a consumer), or, with
    `field_meter`, a field meter that signs its own records: the field_meters genesis entry's
    certificate part (scheme, public_key, curve, device_id, import_obis, export_obis)."""

    name: str
    prosumer: bool
    zone: int
    rated_power_w: int
    field_meter: dict | None = None


#: what each neighbourhood household holds at genesis: 1,000 GRID for fees, 2,000 GEUR to trade with
HOUSEHOLD_NATIVE_BALANCE = 1_000 * 10**TOKEN_DECIMALS
HOUSEHOLD_STABLE_BALANCE = 2_000 * 10**STABLECOIN_DECIMALS
#: zone and link capacity per household, so a larger neighbourhood is not capped by the dev feeders
CAPACITY_PER_HOUSEHOLD_W = 8_000


def neighbourhood_spec(validators: int, households: list[Household], clock: dict | None = None) -> dict:
    """The local testnet (`validators` BFT validators, the dev registrar, DSO and issuer) with
    `households` licensed, metered (gridchain's ed25519 meters, or field meters certified through the
    field_meters genesis config) and funded at genesis, and optionally an accelerated chain clock
    (`consensus.timeWarp`, see primitives.chain_clock) for simulated days.

    It starts under the newest runtime version this release knows (the `upgrades` genesis), so the
    web app's standing orders can take a time-of-day window (version 2); `dev` and `local` start
    under version 1, where the upgrade tests begin."""
    from pallets import known_versions  # noqa: PLC0415 - the presets are built without the runtime
    spec = local_spec(validators)
    spec["name"], spec["id"] = "Neighbourhood", "neighbourhood"
    if clock is not None:
        spec["consensus"]["timeWarp"] = clock
    config = spec["genesis"]["runtimeGenesis"]["config"]
    config["upgrades"] = {"spec_version": known_versions()[-1]}
    addresses = [Keypair.from_uri(f"//{h.name}").address() for h in households]
    config["identity"]["participants"] += [
        {"address": a, "roles": ["prosumer" if h.prosumer else "consumer"]} for h, a in zip(households, addresses)]
    config["metering"]["meters"] += [
        {"meter": "0x" + Keypair.from_uri(f"//{h.name}//meter").public_key.hex(), "owner": a, "zone": h.zone,
         "kind": 2 if h.prosumer else 0, "rated_power_w": h.rated_power_w}
        for h, a in zip(households, addresses) if h.field_meter is None]
    field_meters = [{**h.field_meter, "owner": a, "zone": h.zone, "kind": 2 if h.prosumer else 0,
                     "rated_power_w": h.rated_power_w}
                    for h, a in zip(households, addresses) if h.field_meter is not None]
    if field_meters:
        config.setdefault("field_meters", {"meters": []})["meters"] += field_meters
    config["balances"]["balances"] += [[a, HOUSEHOLD_NATIVE_BALANCE] for a in addresses]
    config["balances"]["assets"][0]["balances"] += [[a, HOUSEHOLD_STABLE_BALANCE] for a in addresses]
    grid = config["grid"]
    for z in grid["zones"]:
        n = sum(1 for h in households if h.zone == z["id"])
        z["import_capacity_w"] = max(z["import_capacity_w"], n * CAPACITY_PER_HOUSEHOLD_W)
        z["export_capacity_w"] = max(z["export_capacity_w"], n * CAPACITY_PER_HOUSEHOLD_W)
    grid["links"] = [[a, b, max(w, len(households) * CAPACITY_PER_HOUSEHOLD_W // 4)] for a, b, w in grid["links"]]
    return spec


def couple_feeders(spec: dict, link_w: int) -> dict:
    """Make a spec's two feeders one coupled region of the market (they clear together at gate
    closure, see pallets.market's "Coupled clearing") joined by a link that carries `link_w` watts
    each way. The demo's neighbourhood uses it; `dev` and `local` keep continuous trading."""
    if link_w <= 0:
        raise ChainSpecError("a link between coupled feeders must carry a positive power")
    config = spec["genesis"]["runtimeGenesis"]["config"]
    config.setdefault("market", {})["coupled_regions"] = [[1, 2]]
    config["grid"]["links"] = [[1, 2, link_w], [2, 1, link_w]]
    return spec


PRESETS = {"dev": dev_spec, "local": local_spec}


def load_spec(chain: str) -> dict:
    """A preset name (`dev`, `local`) or a path to a chain spec JSON file."""
    if chain in PRESETS:
        return PRESETS[chain]()
    path = Path(chain)
    if not path.is_file():
        raise ChainSpecError(f"unknown chain {chain!r}: not a preset ({', '.join(PRESETS)}) nor a file")
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ChainSpecError(f"cannot read chain spec {path}: {e}") from None
    for key in ("name", "id", "genesis"):
        if key not in spec:
            raise ChainSpecError(f"chain spec {path} lacks {key!r}")
    return spec


def genesis_storage(spec: dict, runtime: Any) -> dict[bytes, bytes]:
    """Raw genesis storage of a spec, building it from the runtime config when the spec is not raw."""
    g = spec["genesis"]
    if "raw" in g:
        try:
            return {bytes.fromhex(k[2:]): bytes.fromhex(v[2:]) for k, v in g["raw"]["top"].items()}
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            raise ChainSpecError(f"bad raw genesis: {e}") from None
    if "runtimeGenesis" in g:
        try:
            return runtime.build_genesis_storage(g["runtimeGenesis"]["config"])
        except (ValueError, KeyError, TypeError) as e:
            raise ChainSpecError(f"bad genesis config: {e}") from None
    raise ChainSpecError("genesis has neither 'raw' nor 'runtimeGenesis'")


def to_raw(spec: dict, runtime: Any) -> dict:
    raw = {k: v for k, v in spec.items() if k != "genesis"}
    storage = genesis_storage(spec, runtime)
    raw["genesis"] = {"raw": {"top": {"0x" + k.hex(): "0x" + v.hex() for k, v in sorted(storage.items())}}}
    return raw
