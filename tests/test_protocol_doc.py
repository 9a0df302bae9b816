"""docs/protocol.md publishes test vectors; they must be exactly what the code produces."""
from __future__ import annotations

from pathlib import Path

import pytest
import rlp
from trie import HexaryTrie

from tests.protocol_vectors import vectors

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
VECTORS = vectors()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector_appears_verbatim_in_protocol_doc(name):
    if name == "proof.nodes":
        for node in VECTORS[name].split(", "):
            assert node in DOC
    else:
        assert VECTORS[name] in DOC, f"{name} in docs/protocol.md is stale"


def test_documented_read_proof_verifies_with_py_trie():
    from pallets import system
    from primitives.keys import dev_keypair
    root = bytes.fromhex(VECTORS["proof.root"][2:])
    proof = [rlp.decode(bytes.fromhex(n[2:])) for n in VECTORS["proof.nodes"].split(", ")]
    key = system.account.key_of(dev_keypair("Alice").public_key)
    assert HexaryTrie.get_from_proof(root, key, proof) == bytes.fromhex(VECTORS["value.account"][2:])
