"""The import arrows of the design's layout table, checked on the source with `ast`.

`wallet/` and `meters/` are outside clients: they speak JSON-RPC and may import only `primitives`
and the rpc client, never the node, the runtime, the pallets, consensus or p2p (their layouts come
from the node's metadata). Nothing in `primitives/` imports the runtime, a pallet or the node, and
the runtime framework imports no pallet. Every import counts, at module level or inside a function,
`import x.y` and `from x import y` alike (relative imports stay inside their own package).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package folder -> the top-level packages its modules must never import
FORBIDDEN = {
    "wallet": {"node", "runtime", "pallets", "consensus", "p2p"},
    "meters": {"node", "runtime", "pallets", "consensus", "p2p"},
    "primitives": {"pallets", "runtime", "node"},
    "runtime": {"pallets"},
}


def imported_packages(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(package: str) -> list[str]:
    banned = FORBIDDEN[package]
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in imported_packages(path.read_text(), str(path)):
            if top in banned:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return out


def test_the_checker_sees_imports_at_module_level_and_inside_functions():
    source = ("import os\nfrom pallets.identity import Role\n"
              "def f():\n    import node.cli\n    from runtime import pallet\n    from . import sibling\n")
    assert [top for _, top in imported_packages(source, "x.py")] == ["os", "pallets", "node", "runtime"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_the_layout_allows(package):
    assert (ROOT / package).is_dir()
    found = violations(package)
    assert not found, f"{package}/ may not import {', '.join(sorted(FORBIDDEN[package]))}:\n" + "\n".join(found)
