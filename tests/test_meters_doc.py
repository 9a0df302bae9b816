"""docs/meters.md §12, the vendor's guide for field meters, kept in step with the code.

The guide lists every error a field meter's vendor can get back, with the sentence the pallet
returns and the kind of its RPC 1010 error; a sentence or kind changed in `pallets/field_meters.py`
or in metering's reading rules must change the guide too. The kinds are read from the pallets'
source (each `_reject(InvalidKind.X, Error.Y)`), not restated here. The guide's example of
`gridchain meter verify` must be what the command prints, and its "not yet" must still be true.
"""
from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest

from pallets import field_meters, metering
from runtime.api import InvalidKind

DOC = (Path(__file__).resolve().parent.parent / "docs" / "meters.md").read_text()
SECTION_TITLE = "## 12. Field meters: OCMF, SML/EDL40 and DLMS"
_ROW = re.compile(r"^\| `(\w+)` \| (.+) \| (.+) \|$")


def _section() -> str:
    start = DOC.index("\n" + SECTION_TITLE + "\n") + 1
    end = DOC.find("\n## ", start)
    return DOC[start:end if end != -1 else len(DOC)]


def _rows(text: str) -> dict[str, list[tuple[str, set[str]]]]:
    """Error name -> each (sentence, kinds) row of the section's error tables that names it."""
    out: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            out[m.group(1)].append((m.group(2), set(re.findall(r"`(\w+)`", m.group(3)))))
    return out


def _error_names(node: ast.AST) -> set[str]:
    return {a.attr for a in ast.walk(node)
            if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == "Error"}


def _functions(module: ModuleType) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(inspect.getsource(module))
    return {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}


def _rejections(module: ModuleType, only: tuple[str, ...] | None = None) -> dict[str, set[str]]:
    """Error name -> the 1010 kinds it is raised with, from the module's `_reject(kind, error)` calls
    (in the functions `only`, if given). An error held in a variable is followed to the function
    that returned it; `_CODE_ERRORS.get(...)` stands for every error of that table."""
    functions = _functions(module)
    code_errors = {e.name for e in getattr(module, "_CODE_ERRORS", {}).values()}
    out: dict[str, set[str]] = defaultdict(set)
    for name, fn in functions.items():
        if only is not None and name not in only:
            continue
        returned_by = {t.id: n.value.func.id for n in ast.walk(fn)
                       if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                       and isinstance(n.value.func, ast.Name) for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_reject"):
                continue
            kinds = {InvalidKind[a.attr].value for a in ast.walk(node.args[0])
                     if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == "InvalidKind"}
            arg = node.args[1]
            errors = _error_names(arg)
            if isinstance(arg, ast.Name) and returned_by.get(arg.id) in functions:
                errors |= _error_names(functions[returned_by[arg.id]])
            if any(isinstance(n, ast.Name) and n.id == "_CODE_ERRORS" for n in ast.walk(arg)):
                errors |= code_errors
            for e in errors:
                out[e] |= kinds
    return out


def _dispatch_errors(module: ModuleType) -> set[str]:
    """Errors a call raises while it runs (`ensure(..., Error.X)`, `fail(Error.X)`)."""
    out: set[str] = set()
    for fn in _functions(module).values():
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("ensure", "fail"):
                out |= _error_names(node)
    return out


def test_the_section_exists_once():
    assert DOC.count("\n" + SECTION_TITLE + "\n") == 1


@pytest.mark.parametrize("error", field_meters.pallet.error_defs, ids=lambda e: e.name)
def test_every_field_meters_error_is_in_the_guide_with_its_sentence_and_kind(error):
    rows = _rows(_section())[error.name]
    assert rows, f"docs/meters.md §12 has no row for field_meters.{error.name}"
    rejected = _rejections(field_meters)
    for sentence, kinds in rows:
        assert sentence == error.message, f"{error.name}: the guide's sentence is not the pallet's"
        if error.name in rejected:
            assert kinds and kinds <= rejected[error.name], \
                f"{error.name}: the guide says {sorted(kinds)}, the pallet raises {sorted(rejected[error.name])}"
        else:
            assert error.name in _dispatch_errors(field_meters)
            assert kinds == {"ExtrinsicFailed"}, f"{error.name} fails a call: the guide must say ExtrinsicFailed"


def test_every_reading_rule_of_metering_a_record_meets_is_in_the_guide():
    """check_values is what field_meters runs after its own rules: each error it (or the bound
    check it calls) raises is in the guide with its sentence and kind."""
    raised = _rejections(metering, only=("check_values", "_out_of_range"))
    assert len(raised) >= 10
    rows = _rows(_section())
    for name, kinds_raised in raised.items():
        assert rows.get(name), f"docs/meters.md §12 has no row for metering.{name}"
        for sentence, kinds in rows[name]:
            assert sentence == getattr(metering.Error, name).message, f"{name}: the guide's sentence is stale"
            assert kinds and kinds <= kinds_raised, f"{name}: the guide says {sorted(kinds)}, metering raises {sorted(kinds_raised)}"


def test_the_guide_says_a_failed_batched_signature_check_gets_the_pallets_sentence():
    """tests/test_field_meters_pallet.py checks the node does so; the guide must not promise the
    node's generic bad-signature sentence instead."""
    text = " ".join(_section().split())
    assert "so the answer is the pallet's `BadSignature` sentence with kind `BadProof`" in text
    assert "bad signature (wrong key, or signed for another chain or runtime version)" not in text


def _code_block_after(marker: str) -> str:
    text = _section()
    start = text.index("```\n", text.index(marker)) + 4
    return text[start:text.index("```", start)]


def test_the_verify_example_is_what_the_command_prints():
    from meters.verify import as_text, verify
    from tests.protocol_vectors import field_meter_vectors
    v = field_meter_vectors()
    record, key = v["fm.ocmf.record"].encode(), bytes.fromhex(v["fm.ocmf.public_der"][2:])
    shown = _code_block_after("in `record.txt`")
    assert shown.startswith(f"$ gridchain meter verify record.txt --public-key {key.hex()}\n")
    assert shown.split("\n", 1)[1] == as_text(verify(record, "auto", key)).rstrip("\n") + "\n"
    tampered = record.replace(b'"RV":12.345', b'"RV":12.346')
    assert tampered != record
    shown = _code_block_after("changed to")
    out = verify(tampered, "auto", key)
    assert not out.valid and out.code == "bad-signature"
    assert shown.split("\n", 1)[1] == as_text(out).rstrip("\n") + "\n"


def test_the_guide_says_not_yet_only_while_meter_run_takes_no_field_meter_source():
    """The guide says `meter run --source ocmf:|sml:|dlms:` does not exist yet. When `meter run`
    names such a source, this fails until the guide documents it."""
    from meters.cli import run
    (source,) = [p for p in run.params if p.name == "sources"]
    takes_field_sources = any(f"{kind}:" in (source.help or "") for kind in ("ocmf", "sml", "dlms"))
    says_not_yet = "`gridchain meter run --source ocmf:PATH|sml:PATH|dlms:PATH`: not yet." in _section()
    assert says_not_yet != takes_field_sources, \
        "docs/meters.md §12 'Not there yet' no longer matches what `gridchain meter run --source` takes"


def test_the_public_vectors_are_attributed():
    text = " ".join(_section().split())
    assert "SAFE-eV/transparenzsoftware" in text and "S.A.F.E. e.V., Apache-2.0" in text
