"""Where each key and value of a TOML document sits: key path -> line number, for error messages.

Python's `tomllib` parses TOML exactly but keeps no positions, and no well-kept TOML library for
Python offers them either (tomlkit keeps the text's layout, not the lines of its items). The
deployment file's errors must name the line of the offending value, so this module finds it: the
document is parsed by `tomllib` first (which settles what the document means and rejects a
malformed one with its own line and column), and then this small scanner walks the same text once
and notes the line where each key, table header and array element starts. The scanner knows just
enough TOML to find those starts: table headers (`[a.b]`, `[[a.b]]`, and which element of an
array of tables a header opens), dotted and quoted keys, strings of all four kinds (so a `#`, `=`
or bracket inside a string is not mistaken for syntax), comments, arrays and inline tables. It
never decides what a value is: a mistake here could only misplace a line number, never change what
the file means.

Paths are tuples of keys and array indices, as the parsed data is indexed:

    [[zones]]            ("zones", 0)             line of the header
    id = 1               ("zones", 0, "id")       line of the key
    hours = ["00:00-07:00",
             "22:00-24:00"]                ... ("hours", 1) is the second line
"""
from __future__ import annotations

import bisect
import re
import tomllib

Path = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _Scanner:
    """One pass over an already valid TOML text (see the module docstring)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.newlines = [k for k, c in enumerate(text) if c == "\n"]
        self.lines: dict[Path, int] = {}
        self.aot_len: dict[Path, int] = {}    # array-of-tables path -> elements opened so far

    # -- positions --------------------------------------------------------------------------------
    def line(self, at: int | None = None) -> int:
        return bisect.bisect_left(self.newlines, self.i if at is None else at) + 1

    def note(self, path: Path, *, first: bool = False) -> None:
        if first:
            self.lines.setdefault(path, self.line())
        else:
            self.lines[path] = self.line()

    def peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    # -- whitespace and comments -----------------------------------------------------------------
    def skip_blank(self, newlines: bool) -> None:
        """Spaces, tabs, comments and (if `newlines`) line breaks."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    # -- keys and strings ------------------------------------------------------------------------
    def key(self) -> list[str]:
        """A possibly dotted key; quoted parts decoded by tomllib itself."""
        parts = []
        while True:
            self.skip_blank(newlines=False)
            start = self.i
            if self.peek() in ("\"", "'"):
                self.string()
                parts.append(next(iter(tomllib.loads(self.s[start:self.i] + " = 0"))))
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if m is None:
                    raise ValueError("no key")
                parts.append(m.group())
                self.i = m.end()
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return parts
            self.i += 1

    def string(self) -> None:
        """Skip a string of any kind: basic, literal, and their multi-line forms."""
        for quote in ('"""', "'''"):
            if self.peek(3) == quote:
                self.i += 3
                while self.i < len(self.s):
                    if quote == '"""' and self.s[self.i] == "\\":
                        self.i += 2
                    elif self.peek(3) == quote:
                        self.i += 3
                        while self.peek() == quote[0]:       # up to two quotes may end the content
                            self.i += 1
                        return
                    else:
                        self.i += 1
                return
        quote = self.s[self.i]
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] != quote:
            self.i += 2 if quote == '"' and self.s[self.i] == "\\" else 1
        self.i += 1

    # -- values --------------------------------------------------------------------------------
    def value(self, path: Path) -> None:
        c = self.peek()
        if c in ("\"", "'"):
            self.string()
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("]", ""):
                    self.i += 1
                    return
                self.note(path + (index,))
                self.value(path + (index,))
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.i += 1
                    index += 1
                elif self.peek() != "]":
                    raise ValueError("no array delimiter")
        elif c == "{":
            self.i += 1
            while True:
                self.skip_blank(newlines=True)
                if self.peek() in ("}", ""):
                    self.i += 1
                    return
                self.key_value(path)
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.i += 1
                elif self.peek() != "}":
                    raise ValueError("no inline table delimiter")
        else:                                   # number, boolean, date-time: up to a delimiter
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.i += 1

    def key_value(self, table: Path) -> None:
        start = self.i
        path = table + tuple(self.key())
        self.lines[path] = self.line(start)
        self.skip_blank(newlines=False)
        self.i += 1                                # the "="
        self.skip_blank(newlines=False)
        self.value(path)

    # -- tables ----------------------------------------------------------------------------------
    def resolve(self, parts: list[str]) -> Path:
        """A header's key as a data path: a part naming an array of tables means its last element."""
        path: Path = ()
        for p in parts:
            path += (p,)
            if path in self.aot_len:
                path += (self.aot_len[path] - 1,)
        return path

    def header(self) -> Path:
        start = self.i
        if self.peek(2) == "[[":
            self.i += 2
            parts = self.key()
            array = self.resolve(parts[:-1]) + (parts[-1],)
            index = self.aot_len.get(array, 0)
            self.aot_len[array] = index + 1
            self.lines.setdefault(array, self.line(start))
            path = array + (index,)
            self.i += 2
        else:
            self.i += 1
            path = self.resolve(self.key())
            self.i += 1
        self.lines.setdefault(path, self.line(start))
        return path

    def run(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.i >= len(self.s):
                return self.lines
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)


def key_lines(text: str) -> dict[Path, int]:
    """Line (1-based) of each key, table header and array element of a valid TOML `text`. Should the
    scan ever trip over a construct, the lines found so far are returned (errors then name the
    nearest enclosing key found)."""
    scanner = _Scanner(text)
    try:
        return scanner.run()
    except (ValueError, IndexError, StopIteration, tomllib.TOMLDecodeError):
        return scanner.lines


def line_of(lines: dict[Path, int], path: Path) -> int:
    """The line of `path`, or of its nearest ancestor the scan found (1 if none)."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1
