"""`gridchain admin council ...`: root calls by council motion (docs/admin.md, Council).

On a chain without sudo, anything that needs the root origin (a zone, a tariff framework, the
validator set, a runtime upgrade, the council's own membership) goes through a motion of the
council (pallets/council.py): a member proposes the call, members vote, and once the motion has its
threshold of ayes and the enactment delay is over, anyone enacts it. `propose` builds the call by
pallet and call name from the node's metadata, each argument typed as NAME=VALUE text
(wallet/council.py); `motions` lists the open motions with their calls decoded and their tallies.

Each command signs with the keystore account `--as NAME` and first checks on chain what the pallet
would refuse (not a member, not a root call, a second vote, too early), printing the pallet's own
sentence in one line and sending nothing.
"""
from __future__ import annotations

import click

from primitives.keys import Keypair
from wallet.admin import as_option, role_names, signer_name, status_name
from wallet.cli_common import (
    WalletGroup,
    common_options,
    current_settings,
    emit,
    finish_tx,
    run_job,
    table,
    tx_options,
    unlock,
)
from wallet.council import (
    best_number,
    build_call,
    call_text,
    chain_allows_dev_uris,
    describe_call,
    members,
    motion,
    motions,
    pallet_error,
    require_member,
)
from wallet.wallet import TxReport, Wallet, WalletError

MOTION_ID = click.IntRange(0, 2**32 - 1)


@click.group(cls=WalletGroup)
@common_options
@as_option
def council() -> None:
    """Council motions: propose a root call by name with typed arguments, vote, list motions with
    their tallies, enact, withdraw; and the council's members."""


def _signer() -> tuple[str, Keypair]:
    name = signer_name()
    return name, unlock(current_settings(), name)


def _refuse(w: Wallet, motion_id: int, error: str, detail: str = "") -> WalletError:
    """The pallet's sentence for `error`, about a motion, as the chain would say it; nothing sent."""
    return WalletError(f"motion {motion_id}: {pallet_error(w.state.metadata, 'council', error)}{detail}; "
                       "nothing was sent")


def _enacted_error(r: TxReport) -> str | None:
    """The call's error from the Enacted event (None on success), as `sudo.Sudid` shows it."""
    for e in r.emitted("council", "Enacted"):
        res = e.get("result")
        if res is None:
            return None
        return str(res[2]) if isinstance(res, (list, tuple)) and len(res) == 3 else str(res)
    return None


@council.command("propose")
@click.argument("pallet")
@click.argument("call")
@click.argument("args", nargs=-1, metavar="[NAME=VALUE]...")
@tx_options
@as_option
@common_options
def propose(pallet: str, call: str, args: tuple[str, ...], wait: str) -> None:
    """Propose root call PALLET CALL with its arguments as NAME=VALUE (integers, true/false,
    accounts as SS58 or 0x, hashes and bytes as 0x-hex, text, lists as JSON); your aye counts at once.
    Prints the motion id."""
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        the_call, described = build_call(w, pallet, call, list(args), dev_uris=await chain_allows_dev_uris(w))
        at = await w.state.best_hash()
        await require_member(w, kp.public_key, name, at)
        r = await w.submit(kp, "council", "propose", {"call": the_call.to_plain()}, until=wait)
        proposed = r.emitted("council", "Proposed")
        passed = r.emitted("council", "Passed")
        r.result = {"motionId": proposed[0]["motion_id"] if proposed else None, "call": call_text(described),
                    "args": described["args"], "required": proposed[0]["required"] if proposed else None,
                    "end": proposed[0]["end"] if proposed else None,
                    "enactAt": passed[0]["enact_at"] if passed else None}
        return w, r
    _w, r = run_job(current_settings(), job)
    x = r.result
    finish_tx(current_settings(), r, lambda: (
        f"motion {x['motionId']} proposed: {x['call']}\n"
        f"  your aye counted; {x['required']} aye(s) needed; votes are taken before block #{x['end']}"
        + (f"\n  passed at once: enactable from block #{x['enactAt']}" if x["enactAt"] is not None else "")))


@council.command("vote")
@click.argument("motion_id", metavar="ID", type=MOTION_ID)
@click.option("--aye/--nay", "approve", default=None, help="Vote for (--aye) or against (--nay) the motion.")
@tx_options
@as_option
@common_options
def vote(motion_id: int, approve: bool | None, wait: str) -> None:
    """Vote on open motion ID, once, before its voting period ends (members)."""
    if approve is None:
        raise WalletError("give --aye or --nay")
    name, kp = _signer()

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        await require_member(w, kp.public_key, name, at)
        m = await motion(w, motion_id, at)
        if await best_number(w, at) + 1 >= m["end"]:
            raise _refuse(w, motion_id, "VotingPeriodOver", f" (votes were taken until block #{m['end']})")
        if m["enact_at"] is not None:
            raise _refuse(w, motion_id, "AlreadyPassed")
        if kp.public_key in m["ayes"] or kp.public_key in m["nays"]:
            raise _refuse(w, motion_id, "AlreadyVoted",
                          f" ({'aye' if kp.public_key in m['ayes'] else 'nay'})")
        r = await w.submit(kp, "council", "vote", {"motion_id": motion_id, "approve": approve}, until=wait)
        voted = r.emitted("council", "Voted")
        passed, failed = r.emitted("council", "Passed"), r.emitted("council", "Failed")
        r.result = {"motionId": motion_id, "approve": approve,
                    "ayes": voted[0]["ayes"] if voted else None, "nays": voted[0]["nays"] if voted else None,
                    "outcome": "passed" if passed else "failed" if failed else "voting",
                    "enactAt": passed[0]["enact_at"] if passed else None}
        return w, r
    _w, r = run_job(current_settings(), job)
    x = r.result
    finish_tx(current_settings(), r, lambda: (
        f"voted {'aye' if approve else 'nay'} on motion {motion_id}: {x['ayes']} aye(s), {x['nays']} nay(s)"
        + {"passed": f"\n  the motion passed: enactable from block #{x['enactAt']}",
           "failed": "\n  the motion failed: it can no longer reach its threshold",
           "voting": ""}[x["outcome"]]))


@council.command("enact")
@click.argument("motion_id", metavar="ID", type=MOTION_ID)
@tx_options
@as_option
@common_options
def enact(motion_id: int, wait: str) -> None:
    """Enact passed motion ID once its enactment delay is over: its call runs as root (any account)."""
    kp = unlock(current_settings(), signer_name())

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        m = await motion(w, motion_id, at)
        if m["enact_at"] is None:
            raise _refuse(w, motion_id, "NotPassed")
        best = await best_number(w, at)
        if best + 1 < m["enact_at"]:
            raise _refuse(w, motion_id, "TooEarly", f" (enactable from block #{m['enact_at']}; the best block "
                                                    f"is #{best})")
        described = describe_call(w, m["call"])
        r = await w.submit(kp, "council", "enact", {"motion_id": motion_id}, until=wait)
        r.result = {"motionId": motion_id, "call": call_text(described), "callError": _enacted_error(r)}
        return w, r
    _w, r = run_job(current_settings(), job)
    x = r.result
    finish_tx(current_settings(), r, lambda: f"motion {motion_id} enacted: {x['call']} ran as root")
    if x["callError"] is not None:
        raise WalletError(f"motion {motion_id} was enacted (and is closed), but its call failed as root: "
                          f"{x['callError']}")


@council.command("withdraw")
@click.argument("motion_id", metavar="ID", type=MOTION_ID)
@tx_options
@as_option
@common_options
def withdraw(motion_id: int, wait: str) -> None:
    """Withdraw motion ID before it is enacted (its proposer)."""
    kp = unlock(current_settings(), signer_name())

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        at = await w.state.best_hash()
        m = await motion(w, motion_id, at)
        if m["proposer"] != kp.public_key:
            raise _refuse(w, motion_id, "NotProposer", f" (proposed by {w.address(m['proposer'])})")
        r = await w.submit(kp, "council", "withdraw", {"motion_id": motion_id}, until=wait)
        r.result = {"motionId": motion_id}
        return w, r
    _w, r = run_job(current_settings(), job)
    finish_tx(current_settings(), r, lambda: f"motion {motion_id} withdrawn")


def _motions_text(best: int, rows: list[dict]) -> str:
    if not rows:
        return f"no open motions (best block #{best})"
    return f"best block #{best}\n" + table(
        [["id", "call", "proposer", "ayes", "nays", "required", "ends", "status", "enact at"]]
        + [[str(m["id"]), m["call"], m["proposer"], str(m["ayes"]), str(m["nays"]),
            f"{m['required']} ({m['threshold']})", f"#{m['end']}", m["status"],
            f"#{m['enactAt']}" if m["enactAt"] is not None else "-"] for m in rows])


@council.command("motions")
@common_options
def motions_cmd() -> None:
    """List the open motions: call with its arguments, proposer, ayes, nays and the count required,
    the block voting ends, status (voting, passed, enactable) and the block from which it may be enacted."""
    s = current_settings()
    best, rows = run_job(s, motions)
    emit(s, {"bestBlock": best, "motions": rows}, lambda: _motions_text(best, rows))


@council.command("members")
@common_options
def members_cmd() -> None:
    """List the council's members with the roles their licences hold."""
    s = current_settings()

    async def job(w: Wallet) -> list[dict]:
        at = await w.state.best_hash()
        out = []
        for who in await members(w, at):
            p = await w.state.read("identity", "participants", who, at=at)
            out.append({"account": w.address(who),
                        "roles": role_names(w, int(p["roles"])) if p else [],
                        "status": status_name(w, int(p["status"])) if p else "unlicensed"})
        return out
    rows = run_job(s, job)
    emit(s, rows, lambda: table([["member", "roles", "licence"]]
                                + [[m["account"], ",".join(m["roles"]), m["status"]] for m in rows])
         if rows else "this chain has no council")
