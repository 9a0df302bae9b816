"""A pytest plugin for long fuzz runs: counts the state machines hypothesis ran and their steps, and
prints them when the run ends. Hypothesis calls a machine's check_invariants once after
initialising it and once after every step, so steps = invariant checks - machines.

    GRIDCHAIN_FUZZ=1100 .venv/bin/python -m pytest tests/test_market_invariants.py \\
        -k TestMarketInvariants --timeout=2600 -p tests.stepcount
"""
from __future__ import annotations

import time

import hypothesis.stateful as stateful

_counts = {"checks": 0, "machines": 0}
_started = time.monotonic()
_check = stateful.RuleBasedStateMachine.check_invariants
_init = stateful.RuleBasedStateMachine.__init__


def _counting_check(self, *args, **kwargs):
    _counts["checks"] += 1
    return _check(self, *args, **kwargs)


def _counting_init(self, *args, **kwargs):
    _counts["machines"] += 1
    _init(self, *args, **kwargs)


stateful.RuleBasedStateMachine.check_invariants = _counting_check
stateful.RuleBasedStateMachine.__init__ = _counting_init


def pytest_terminal_summary(terminalreporter) -> None:
    machines = _counts["machines"]
    terminalreporter.write_line(f"state machines: {machines}, steps: {_counts['checks'] - machines}, "
                                f"wall: {time.monotonic() - _started:.0f} s")
