"""`gridchain meter verify` over real meters' signed records and over our own test meters' records.

Every case in tests/vectors/meter-signatures/vectors.json must get its expected verdict: exit 0
for valid, 1 for invalid, and the same verdict in --json. The vectors are real signed records from
OCMF chargers and EDL40/SML meters (and a few variants derived from them); their source:

  SAFE-eV/transparenzsoftware, src/test/resources/, commit d556f1ace68043682862b9403b7fff25f1df93a6.
  Copyright 2023 S.A.F.E. e.V., Verein zur Förderung der Forschung und des Verbraucherschutzes im
  Bereich der Elektromobilität. Licensed under the Apache License, Version 2.0.
  (Derived cases, "derived": true, are modifications of the case named in "derived_from".)

The vectors and their README (source, licence, attribution) are shipped in tests/vectors/meter-signatures/.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, os.path.dirname(__file__))
from node_process import run_gridchain

from meters.cli import meter
from meters.field_meters import EDL40_COMMISSIONED_AT, DlmsTestMeter, OcmfTestMeter, SmlTestMeter
from tests.meter_vectors import load_cases
from primitives.meter_formats import sml

VECTORS: list[dict[str, Any]] = load_cases()

#: The --format each vector's format is verified under (EDL40 XML and ISA-EDL-40P are SML/EDL40 too).
FORMAT_OF = {"ocmf": "ocmf", "edl40-sml": "sml-edl40", "edl40-signed-meter-value": "sml-edl40",
             "isa-edl40p-sml": "sml-edl40"}

T0 = 1_714_564_800          # 2024-05-01T12:00:00Z, an interval boundary


def record_bytes(case: dict[str, Any]) -> bytes:
    """What the meter transmitted: the OCMF or XML text, or the SML file's bytes."""
    return case["transmitted"].encode() if "transmitted" in case else bytes.fromhex(case["transmitted_hex"])


def run_verify(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(meter, ["verify", str(path), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def verify_json(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, output = run_verify(path, *args, "--json")
    return code, json.loads(output)


def test_the_vectors_are_all_there():
    assert len(VECTORS) == 28
    assert {c["expected_verdict"] for c in VECTORS} == {"valid", "invalid"}
    assert set(FORMAT_OF) == {c["format"] for c in VECTORS}


# ---------------------------------------------------------------------------------------------
# every vector: verdict, exit code, --json
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", VECTORS, ids=[c["id"] for c in VECTORS])
@pytest.mark.parametrize("fmt", ["auto", "explicit"])
def test_every_vector_gets_its_expected_verdict(case, fmt, tmp_path):
    path = tmp_path / "record"
    path.write_bytes(record_bytes(case))
    fmt_args = ["--format", "auto" if fmt == "auto" else FORMAT_OF[case["format"]]]
    expected_valid = case["expected_verdict"] == "valid"

    code, out = run_verify(path, *fmt_args, "--public-key", case["public_key_hex"])
    assert code == (0 if expected_valid else 1), out
    assert out.startswith("Verdict:   VALID" if expected_valid else "Verdict:   INVALID"), out

    code, doc = verify_json(path, *fmt_args, "--public-key", case["public_key_hex"])
    assert code == (0 if expected_valid else 1)
    assert doc["valid"] is expected_valid, doc
    if expected_valid:
        assert doc["reason"] is None and doc["code"] is None
        assert doc["curve"] == case["curve"]
        assert doc["readings"], doc
    else:
        assert doc["reason"] and doc["code"], doc
        assert doc["curve"] in (case["curve"], None), "the record's curve, never the wrong key's"


@pytest.mark.parametrize("case", [c for c in VECTORS if c["expected_verdict"] == "valid"
                                  and c["format"] == "ocmf" and "MS" in (c.get("meter") or {})][:3],
                         ids=lambda c: c["id"])
def test_ocmf_vector_shows_meter_serial_and_readings(case, tmp_path):
    path = tmp_path / "r.ocmf"
    path.write_bytes(record_bytes(case))
    code, doc = verify_json(path, "--public-key", case["public_key_hex"])
    assert code == 0
    assert doc["format"] == "ocmf"
    assert doc["meterId"] == case["meter"]["MS"]
    assert len(doc["readings"]) == len(case["readings"])
    for shown, sent in zip(doc["readings"], case["readings"]):
        assert shown["unit"] == sent["unit_RU"]
        assert shown["value"] == str(sent["register_value_RV"]).strip()
        assert shown["time"].endswith("Z")


def test_lem_import_export_values_are_exact(tmp_path):
    case = next(c for c in VECTORS if c["id"] == "ocmf-p256-lem-import-export")
    path = tmp_path / "lem.ocmf"
    path.write_bytes(record_bytes(case))
    code, doc = verify_json(path, "--public-key", case["public_key_hex"])
    assert code == 0
    assert [(r["obis"], r["value"], r["unit"], r["time"]) for r in doc["readings"]] == [
        ("1-0:1.8.0", "57.584", "kWh", "2021-10-06T11:13:56Z"),
        ("1-0:2.8.0", "4.405", "kWh", "2021-10-06T11:13:56Z"),     # no TM: the reading before's time
        ("1-0:1.8.0", "58.685", "kWh", "2021-10-06T11:15:13Z"),
        ("1-0:2.8.0", "4.405", "kWh", "2021-10-06T11:15:13Z")]
    assert doc["counter"] == 144


def test_sml_vector_shows_server_id_and_tenths_of_wh(tmp_path):
    case = next(c for c in VECTORS if c["id"] == "edl40-sml-emoc-p256-begin")
    path = tmp_path / "emoc.sml"
    path.write_bytes(record_bytes(case))
    code, doc = verify_json(path, "--public-key", case["public_key_hex"])
    assert code == 0
    assert doc["meterId"] == case["meter"]["server_id_hex"]
    signed = next(r for r in doc["readings"] if r["obis"].startswith("1-0:1.17.0"))
    assert (signed["value"], signed["unit"]) == ("21196.6", "Wh")


def test_sml_as_hex_text_is_the_same_record(tmp_path):
    case = next(c for c in VECTORS if c["id"] == "edl40-sml-p192")
    spaced = " ".join(case["transmitted_hex"][i:i + 32] for i in range(0, len(case["transmitted_hex"]), 32))
    path = tmp_path / "edl40.hex"
    path.write_text(spaced.upper() + "\n")
    code, doc = verify_json(path, "--public-key", case["public_key_hex"])
    assert code == 0, doc
    path.write_bytes(record_bytes(case))
    code, doc_binary = verify_json(path, "--public-key", case["public_key_hex"])
    assert code == 0 and doc_binary["readings"] == doc["readings"]


def test_signed_meter_value_xml_uses_its_own_key_when_none_is_given(tmp_path):
    case = next(c for c in VECTORS if c["id"] == "edl40-smv-emoc-p256-begin")
    path = tmp_path / "smv.xml"
    path.write_bytes(record_bytes(case))
    code, out = run_verify(path)
    assert code == 0, out
    assert "inside the signedMeterValue container" in out
    code, doc = verify_json(path)
    assert (code, doc["valid"], doc["publicKeySource"]) == (0, True, "container")
    # a given key wins over the container's, and another meter's key fails
    code, doc = verify_json(path, "--public-key", "04" + case["public_key_hex"])
    assert (code, doc["publicKeySource"]) == (0, "given")
    isa = next(c for c in VECTORS if c["id"] == "isa-edl40p-ok")
    code, doc = verify_json(path, "--public-key", isa["public_key_hex"])
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc
    assert doc["notes"], doc


@pytest.mark.parametrize("case_id", ["ocmf-p256-bauer-txn-begin", "edl40-sml-emoc-p256-begin"])
def test_ocmf_and_sml_need_a_public_key(case_id, tmp_path):
    case = next(c for c in VECTORS if c["id"] == case_id)
    path = tmp_path / "record"
    path.write_bytes(record_bytes(case))
    code, out = run_verify(path)
    assert code == 1
    assert "no public key given" in out
    code, doc = verify_json(path)
    assert (doc["valid"], doc["code"]) == (False, "no-key")
    assert doc["readings"], "the record parsed, so its (unverified) readings are shown"


# ---------------------------------------------------------------------------------------------
# the real command, as a subprocess
# ---------------------------------------------------------------------------------------------

SUBPROCESS_CASES = ["ocmf-p256-bauer-txn-begin", "ocmf-p256-reading-modified", "edl40-sml-emoc-p256-begin",
                    "isa-edl40p-data-fail", "edl40-smv-p192-wirelane-begin", "isa-edl40p-sign-fail"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_real_command_exit_codes(case_id, tmp_path):
    case = next(c for c in VECTORS if c["id"] == case_id)
    path = tmp_path / "record"
    path.write_bytes(record_bytes(case))
    r = run_gridchain("meter", "verify", str(path), "--public-key", case["public_key_hex"], "--json")
    assert r.returncode == (0 if case["expected_verdict"] == "valid" else 1), r.stdout + r.stderr
    assert json.loads(r.stdout)["valid"] is (case["expected_verdict"] == "valid")
    assert r.stderr == ""


def test_real_command_reads_stdin():
    case = next(c for c in VECTORS if c["id"] == "ocmf-secp384r1-begin")
    r = run_gridchain("meter", "verify", "-", "--format", "ocmf", "--public-key", case["public_key_hex"],
                      input="\n" + case["transmitted"] + "\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verdict:   VALID" in r.stdout


def test_usage_errors_exit_2(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"hello, not a meter record")
    r = run_gridchain("meter", "verify", str(path))
    assert r.returncode == 2 and "--format" in r.stderr
    r = run_gridchain("meter", "verify", str(path), "--format", "ocmf", "--public-key", "zz")
    assert r.returncode == 2 and "--public-key" in r.stderr
    r = run_gridchain("meter", "verify", str(tmp_path / "missing"))
    assert r.returncode == 2
    r = run_gridchain("meter", "verify", str(path), "--format", "csv")
    assert r.returncode == 2
    # named, it is a record that does not parse: invalid, not a usage error
    r = run_gridchain("meter", "verify", str(path), "--format", "ocmf", "--public-key", "04" + "00" * 64)
    assert r.returncode == 1 and "INVALID" in r.stdout


# ---------------------------------------------------------------------------------------------
# our own test meters: valid, tampered, signed by another key
# ---------------------------------------------------------------------------------------------

def ocmf_meters() -> list[OcmfTestMeter]:
    return [OcmfTestMeter(c) for c in ("secp256r1", "secp256k1", "brainpoolP256r1", "secp384r1",
                                       "brainpoolP384r1")] + [OcmfTestMeter(rv_as_string=True)]


def flip_one_payload_byte(record: bytes) -> bytes:
    """The record with one digit of its first register value changed (still well-formed)."""
    i = record.index(b'"RV":') + len(b'"RV":')
    while not record[i:i + 1].isdigit():
        i += 1
    return record[:i] + (b"1" if record[i:i + 1] != b"1" else b"2") + record[i + 1:]


@pytest.mark.parametrize("m", ocmf_meters(), ids=lambda m: f"{m.curve}{'-rv-string' if m.rv_as_string else ''}")
def test_ocmf_test_meter_records_verify_and_tampered_ones_do_not(m, tmp_path):
    rec = m.record(T0 + 900, 12_345, 678)
    path = tmp_path / "r.ocmf"
    path.write_bytes(rec)
    for key in (m.public_key_der(), m.public_key_sec1(), m.public_key_raw()):
        code, doc = verify_json(path, "--public-key", key.hex())
        assert code == 0, doc
        assert doc["meterId"] == m.meter_id and doc["curve"] == m.curve and doc["counter"] == 1
        assert [(r["obis"], r["value"], r["unit"], r["time"]) for r in doc["readings"]] == [
            ("1-0:1.8.0", "12.345", "kWh", "2024-05-01T12:15:00Z"),
            ("1-0:2.8.0", "0.678", "kWh", "2024-05-01T12:15:00Z")]

    path.write_bytes(flip_one_payload_byte(rec))
    code, doc = verify_json(path, "--public-key", m.public_key_der().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc

    other = OcmfTestMeter(m.curve, uri="//Mallory//ocmf", serial=m.serial)
    path.write_bytes(other.record(T0 + 900, 12_345, 678))
    code, doc = verify_json(path, "--public-key", m.public_key_der().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc


def test_sml_test_meter_records_verify_and_tampered_ones_do_not(tmp_path):
    m = SmlTestMeter()
    rec = m.record(T0 + 900, 12_345)
    path = tmp_path / "r.sml"
    path.write_bytes(rec)
    for key in (m.public_key_raw(), m.public_key_sec1(), m.public_key_der()):
        code, doc = verify_json(path, "--public-key", key.hex())
        assert code == 0, doc
        assert (doc["format"], doc["meterId"], doc["curve"], doc["counter"]) == ("sml-edl40", m.meter_id, "secp256r1", 1)
        assert [(r["obis"], r["value"], r["unit"], r["time"]) for r in doc["readings"]] == [
            ("1-0:1.17.0", "12345.0", "Wh", "2024-05-01T12:15:00Z")]
    path.write_text(rec.hex())
    code, doc = verify_json(path, "--format", "sml-edl40", "--public-key", m.public_key_raw().hex())
    assert code == 0, doc

    # one byte of the register value changed: the SML CRCs no longer match
    i = rec.index((123_450).to_bytes(8, "big"))
    path.write_bytes(rec[:i + 7] + bytes([rec[i + 7] ^ 1]) + rec[i + 8:])
    code, doc = verify_json(path, "--public-key", m.public_key_raw().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "integrity"), doc

    # the same change with the CRCs made right again: the signature no longer covers the value
    original = sml.parse(rec).signature
    forged = sml.encode_edl40_file(m.server_id, 123_451, -1, T0 + 900, 60, 1, T0 + 900 - EDL40_COMMISSIONED_AT,
                                   lambda block: b"".join(v.to_bytes(32, "big") for v in original))
    path.write_bytes(forged)
    code, doc = verify_json(path, "--public-key", m.public_key_raw().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc

    # another meter's key signed it (same server id)
    path.write_bytes(SmlTestMeter(uri="//Mallory//sml", server_id=m.server_id).record(T0 + 900, 12_345))
    code, doc = verify_json(path, "--public-key", m.public_key_raw().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc


@pytest.mark.parametrize("suite, curve", [(1, "secp256r1"), (2, "secp384r1")])
def test_dlms_test_meter_pushes_verify_and_tampered_ones_do_not(suite, curve, tmp_path):
    m = DlmsTestMeter(suite)
    rec = m.record(T0 + 900, 12_345, 678)
    path = tmp_path / "push.apdu"
    for data, fmt in ((rec, "auto"), (rec, "dlms"), (rec.hex().encode(), "auto"), (rec.hex().upper().encode(), "dlms")):
        path.write_bytes(data)
        for key in (m.public_key_der(), m.public_key_sec1(), m.public_key_raw()):
            code, doc = verify_json(path, "--format", fmt, "--public-key", key.hex())
            assert code == 0, doc
            assert (doc["format"], doc["meterId"], doc["curve"], doc["counter"]) == \
                ("dlms-general-signing", m.meter_id, curve, 1)
            assert doc["readings"] == [
                {"obis": "1-0:1.8.0", "value": "12345", "unit": "Wh", "time": "2024-05-01T12:15:00Z"},
                {"obis": "1-0:2.8.0", "value": "678", "unit": "Wh", "time": "2024-05-01T12:15:00Z"}]

    # one byte of the import register changed
    i = rec.index((12_345).to_bytes(4, "big"))
    path.write_bytes(rec[:i + 3] + bytes([rec[i + 3] ^ 1]) + rec[i + 4:])
    code, doc = verify_json(path, "--public-key", m.public_key_der().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc
    assert doc["readings"][0]["value"] == "12344"

    # another key signed it (same system title)
    path.write_bytes(DlmsTestMeter(suite, uri="//Mallory//dlms", system_title=m.system_title).record(T0 + 900, 12_345, 678))
    code, doc = verify_json(path, "--public-key", m.public_key_der().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "bad-signature"), doc

    # trailing bytes after the signature
    path.write_bytes(rec + b"\x00")
    code, doc = verify_json(path, "--public-key", m.public_key_der().hex())
    assert (code, doc["valid"], doc["code"]) == (1, False, "malformed"), doc

    # no key: nothing in the APDU can stand in for the meter's certificate
    path.write_bytes(rec)
    code, doc = verify_json(path)
    assert (code, doc["code"]) == (1, "no-key")


def test_real_command_on_test_meters_records(tmp_path):
    """One record of each test meter through the installed command, its key in each encoding."""
    for m, key in ((OcmfTestMeter("brainpoolP256r1"), "der"), (SmlTestMeter(), "raw"), (DlmsTestMeter(2), "sec1")):
        path = tmp_path / m.scheme
        path.write_bytes(m.record(T0 + 900, 5, 0))
        pub = {"der": m.public_key_der, "raw": m.public_key_raw, "sec1": m.public_key_sec1}[key]()
        r = run_gridchain("meter", "verify", str(path), "--public-key", pub.hex())
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"Meter id:  {m.meter_id}" in r.stdout


def test_raw_key_whose_x_starts_like_der_is_read_raw(tmp_path):
    """About one raw X||Y key in 256 begins with 0x30, a DER SEQUENCE's first byte; the command
    reads it raw when it is not DER (ecdsa.load_public_key alone refuses it)."""
    m = DlmsTestMeter(1, uri="//raw30-29//dlms")
    assert m.public_key_raw()[0] == 0x30
    path = tmp_path / "push"
    path.write_bytes(m.record(T0 + 900, 1, 2))
    code, doc = verify_json(path, "--public-key", m.public_key_raw().hex())
    assert (code, doc["valid"]) == (0, True), doc
    code, doc = verify_json(path, "--public-key", DlmsTestMeter(1).public_key_raw().hex())
    assert (code, doc["code"]) == (1, "bad-signature"), doc
