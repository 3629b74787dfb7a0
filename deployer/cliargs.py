"""Global options anywhere on the command line, as kubectl accepts ``-n`` anywhere.

The parser takes global options (``-n``, ``--context``, ``-o``, ...) only before the
subcommand. :func:`hoist` moves those written after it to the front, untouched, so
the parser reads them exactly as if they had been written first: ``-ojson``,
``--output=json`` and ``-o json`` all stay what they were. Arity comes from the parser's
own option table, so a value that looks like an option (``--reason -n``) stays with
the option it belongs to. Nothing after ``--`` is moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Opt:
    name: str  # the parameter: -n and --namespace are one
    takes_value: bool


@dataclass(frozen=True)
class OptionTable:
    """The options of the group (global) and of each subcommand, by option string."""

    globals: Mapping[str, Opt]
    commands: Mapping[str, Mapping[str, Opt]] = field(default_factory=dict)


@dataclass(frozen=True)
class Hoisted:
    argv: list[str]
    output: str | None  # the last -o/--output given anywhere, as written
    repeated: dict[str, list[str]] = field(default_factory=dict)  # name -> the tokens


def _split(token: str, table: Mapping[str, Opt]) -> tuple[str, str | None] | None:
    """(option, attached value) when ``token`` names an option of ``table``."""
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        if name in table:
            return name, value if eq else None
        return None
    if token.startswith("-") and len(token) > 1:
        name = token[:2]
        if name in table:
            rest = token[2:]
            if not rest:
                return name, None
            if table[name].takes_value:
                return name, rest  # -ojson, -nshop
    return None


class _Seen:
    """Value options by parameter, to refuse one given twice (which would win?)."""

    def __init__(self) -> None:
        self.tokens: dict[str, list[str]] = {}
        self.last: dict[str, str] = {}  # name -> the value given last, as the parser takes it

    def add(self, opt: Opt, tokens: list[str], value: str | None) -> None:
        if opt.takes_value:
            self.tokens.setdefault(opt.name, []).append(" ".join(tokens))
            if value is not None:
                self.last[opt.name] = value

    def repeated(self) -> dict[str, list[str]]:
        return {name: t for name, t in self.tokens.items() if len(t) > 1}


def _take(argv: list[str], i: int, table: Mapping[str, Opt],
          seen: _Seen) -> tuple[list[str], int] | None:
    """The tokens of the option at ``argv[i]`` (with its value) and the next index."""
    split = _split(argv[i], table)
    if split is None:
        return None
    name, attached = split
    opt = table[name]
    value: str | None = attached
    if opt.takes_value and attached is None and i + 1 < len(argv):
        tokens, after, value = argv[i:i + 2], i + 2, argv[i + 1]
    else:
        tokens, after = argv[i:i + 1], i + 1
    seen.add(opt, tokens, value)
    return tokens, after


def hoist(argv: list[str], table: OptionTable) -> Hoisted:
    """Move global options written after the subcommand to before it."""
    front: list[str] = []
    seen = _Seen()
    i = 0
    while i < len(argv):  # the global options written first
        taken = _take(argv, i, table.globals, seen)
        if taken is None:
            break
        front += taken[0]
        i = taken[1]
    if i >= len(argv) or argv[i] not in table.commands:
        return Hoisted(list(argv), seen.last.get("output"), seen.repeated())
    command, own = argv[i], table.commands[argv[i]]
    moved: list[str] = []
    rest: list[str] = []
    i += 1
    while i < len(argv):
        token = argv[i]
        if token == "--":
            rest += argv[i:]
            break
        mine = _take(argv, i, own, seen)
        if mine is not None:
            rest += mine[0]
            i = mine[1]
            continue
        glob = _take(argv, i, table.globals, seen)
        if glob is not None:
            moved += glob[0]
            i = glob[1]
            continue
        rest.append(token)
        i += 1
    head = front + moved
    return Hoisted(head + [command] + rest, seen.last.get("output"), seen.repeated())


def table_of(group: object) -> OptionTable:
    """The option table of a click group as the parser built it (typer's command)."""

    def options(command: object) -> dict[str, Opt]:
        out: dict[str, Opt] = {}
        for param in getattr(command, "params", []):
            if getattr(param, "param_type_name", "") != "option":
                continue
            takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
            for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
                out[opt] = Opt(str(param.name), takes_value)  # type: ignore[attr-defined]
        return out

    glob = options(group)
    for name in ("-h", "--help", "--version"):
        glob.pop(name, None)  # these belong to whichever command they follow
    commands = {name: options(cmd) for name, cmd in getattr(group, "commands", {}).items()}
    return OptionTable(glob, commands)
