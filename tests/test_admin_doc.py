"""docs/admin.md kept in step with the command tree of `gridchain admin` and `gridchain events`.

Every command (a leaf of the click tree) has a section headed "### `gridchain admin GROUP CMD`",
with an example that runs it; every such heading names a command that exists, so a command renamed
or removed in the code must be renamed or removed in the reference too. The DSO's and the
council's groups are covered the same way, once they are registered under `admin`.
"""
from __future__ import annotations

import re
from pathlib import Path

import click

from node.cli import main

DOC = (Path(__file__).resolve().parent.parent / "docs" / "admin.md").read_text()
HEADING = re.compile(r"^### `(gridchain (?:admin|events)[^`]*)`\s*$", re.MULTILINE)


def leaves(cmd: click.Command, path: str) -> set[str]:
    """The full command lines (`gridchain admin registrar license`) of every leaf under `cmd`."""
    if isinstance(cmd, click.Group):
        return {p for name, sub in cmd.commands.items() for p in leaves(sub, f"{path} {name}")}
    return {path}


def commands() -> set[str]:
    return leaves(main.commands["admin"], "gridchain admin") | leaves(main.commands["events"], "gridchain events")


def sections() -> dict[str, str]:
    """Heading command line -> the text of its section (up to the next heading)."""
    marks = list(HEADING.finditer(DOC))
    ends = [m.start() for m in marks[1:]] + [len(DOC)]
    return {m.group(1): DOC[m.end():end] for m, end in zip(marks, ends)}


def test_the_command_tree_is_what_the_issue_asks_for():
    have = commands()
    for group, names in {"registrar": ("license", "set-roles", "suspend", "reinstate", "revoke", "set-document",
                                       "participants"),
                         "issuer": ("mint", "burn", "supply"), "arbitration": ("disputes", "decide")}.items():
        assert {f"gridchain admin {group} {n}" for n in names} <= have
    assert "gridchain events" in have


def test_every_command_is_documented():
    documented = set(sections())
    missing = sorted(commands() - documented)
    assert not missing, f"commands without a section in docs/admin.md: {missing}"


def test_every_documented_command_exists():
    unknown = sorted(set(sections()) - commands())
    assert not unknown, f"docs/admin.md documents commands that do not exist: {unknown}"


def test_every_section_has_an_example_that_runs_its_command():
    for command, text in sections().items():
        examples = re.findall(r"^\$ (gridchain [^\n]*)$", text, re.MULTILINE)
        assert any(e == command or e.startswith(command + " ") for e in examples), \
            f"the section of `{command}` has no example running it"


def test_every_documented_option_exists():
    """An option written in a section's example (`--seller-share`) is one the command takes."""
    for command, text in sections().items():
        cmd: click.Command = main
        for word in command.split()[1:]:
            cmd = cmd.commands[word]
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for example in re.findall(r"^\$ (gridchain [^\n]*)$", text, re.MULTILINE):
            if not example.startswith(command):
                continue
            used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", example))
            assert used <= options, f"`{example}` uses options `{command}` does not take: {used - options}"
