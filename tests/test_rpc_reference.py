"""docs/rpc.md and the node's `rpc_methods` name the same methods.

The reference's convention (stated at the top of its section 3): every method the node serves is
named in backticks in the `method` or `aliases` column of a method table in section 3, or in the
title of a section 3 subsection; and the `rpc_methods` example at the top of section 3 lists exactly
what the node answers. A method added to the node without a line in the reference, or documented
but not served, fails here with its name.

One real `gridchain --dev` process answers `rpc_methods` over loopback HTTP. Every node builds the
same method table (dev-seal or BFT), so one dev node stands for all.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from node_process import DevNode  # noqa: E402

DOC = (Path(__file__).resolve().parent.parent / "docs" / "rpc.md").read_text()
METHOD_NAME = re.compile(r"`([a-z]+_[A-Za-z]+)`")


def methods_section(doc: str) -> str:
    """Section 3 of the reference: from `## 3. Methods` to the next `## ` heading."""
    start = doc.index("\n## 3. Methods")
    end = doc.index("\n## ", start + 1)
    return doc[start:end]


def _cells(row: str) -> list[str]:
    # a `\|` inside a cell is an escaped pipe, not a column break
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def documented_methods(doc: str) -> set[str]:
    """Names in the `method` and `aliases` columns of section 3's tables, and in its subsection titles."""
    names: set[str] = set()
    columns: list[int] = []
    for line in methods_section(doc).splitlines():
        if line.startswith("### "):
            names.update(METHOD_NAME.findall(line))
            columns = []
            continue
        if not line.startswith("|"):
            columns = []
            continue
        cells = _cells(line)
        if not columns:                       # a table's header row
            columns = [i for i, c in enumerate(cells) if c in ("method", "aliases")] or [-1]
            continue
        if set("".join(cells)) <= set("-: "):  # the separator row
            continue
        for i in columns:
            if 0 <= i < len(cells):
                names.update(METHOD_NAME.findall(cells[i]))
    return names


def example_methods(doc: str) -> list[str]:
    """The list in the `rpc_methods` example response, in its order."""
    section = methods_section(doc)
    start = section.index('"result":{"methods":[')
    end = section.index("]", start)
    return re.findall(r'"([A-Za-z_]+)"', section[start + len('"result":{"methods":['):end])


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> list[str]:
    with DevNode(tmp_path_factory.mktemp("rpcref") / "base", block_time_ms=1000) as node:
        return node.rpc("rpc_methods")["methods"]


def test_parsers_read_the_reference():
    """The conventions the other tests rely on are still how the reference is written."""
    documented = documented_methods(DOC)
    assert {"system_name", "chain_getHead", "state_getKeysPagedAt", "rpc_methods", "engine_createBlock",
            "energy_meter", "author_unwatchExtrinsic"} <= documented
    # notifications and Rust-side names never count as methods
    assert "chain_newHead" not in documented and "author_extrinsicUpdate" not in documented
    assert len(example_methods(DOC)) > 40


@pytest.mark.slow
def test_every_served_method_is_documented_and_every_documented_one_served(served):
    documented = documented_methods(DOC)
    assert sorted(set(served) - documented) == [], "served by the node but not in docs/rpc.md section 3"
    assert sorted(documented - set(served)) == [], "in docs/rpc.md section 3 but not served by the node"


@pytest.mark.slow
def test_rpc_methods_example_is_what_the_node_answers(served):
    example = example_methods(DOC)
    assert example == served, (
        "the rpc_methods example in docs/rpc.md section 3 differs from the node's answer:\n"
        + json.dumps({"methods": served}, separators=(",", ":")))


def test_metadata_example_shows_the_runtime_limits():
    from pallets import build_runtime
    line = next(x for x in DOC.splitlines() if x.strip().startswith('"limits":'))
    documented = json.loads("{" + line.strip().rstrip(",") + "}")["limits"]
    assert documented == build_runtime().metadata()["limits"]


def test_pallet_list_is_the_runtimes():
    from pallets import build_runtime
    start = DOC.index("The dev runtime's pallets are")
    paragraph = DOC[start:DOC.index("\n\n", start)]
    documented = [(name, int(index)) for name, index in re.findall(r"`(\w+)` \((\d+)\)", paragraph)]
    assert documented == [(p["name"], p["index"]) for p in build_runtime().metadata()["pallets"]]
