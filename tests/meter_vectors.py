"""The public signed-meter-record vectors (tests/vectors/meter-signatures/, from S.A.F.E. e.V.'s
transparency software, Apache-2.0: see the README there for source and attribution) and their
independent reference verifier, for the format, pallet and `gridchain meter verify` tests."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "meter-signatures"
VECTORS_PATH = VECTORS_DIR / "vectors.json"


def load_cases(**json_options: Any) -> list[dict[str, Any]]:
    """Every case of vectors.json (json_options go to json.loads, e.g. parse_float)."""
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"), **json_options)


def load_module(path: Path, name: str) -> ModuleType:
    """A Python file that is not part of a package (the reference verifier, a vector generator)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_verifier() -> ModuleType:
    """The reference verifier shipped with the vectors: an oracle we did not write with the parsers."""
    return load_module(VECTORS_DIR / "verify_reference.py", "verify_reference")
