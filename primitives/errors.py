"""Errors that cross the node/RPC boundary carry their JSON-RPC code, so the RPC layer maps any of
them to the right response without knowing where it came from.

Codes follow Substrate's author API (sc-rpc-api): 1001 bad format, 1010 invalid transaction with the
reason in `data`, 1011 unknown validity, 1012 temporarily banned, 1013 already imported, 1014
priority too low, 1016 immediately dropped (pool full).
"""
from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """An error a client may see: a JSON-RPC code, a sentence, and optional structured data."""

    rpc_code: int = -32603

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class BadFormat(ChainError):
    rpc_code = 1001
