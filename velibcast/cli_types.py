"""Argument types and parser behaviour shared by every stage's subcommands.

Every range on the command line is half-open, [start, end): the start is included and the
end is not (RANGE_CONVENTION is quoted in each --help that takes a range).

`Parser` is the class of every velibcast parser (subcommands inherit it through add_subparsers):
a misspelt option or choice gets the closest known one. `share_options` lets a command's
--config and --debug be typed before or after its subcommands.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from datetime import date, datetime

from velibcast.errors import ConfigError
from velibcast.timeutil import UTC, iso_minute

RANGE_CONVENTION = "ranges are half-open [start, end): the start is included, the end is not"


def utc_time(text: str) -> datetime:
    """An ISO time with a zone (`2022-05-26T00:00Z`), as UTC; a naive time is refused."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time; write it like 2022-05-26T06:00Z or 2022-05-26T08:00+02:00") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; write it like 2022-05-26T00:00Z")
    return t.astimezone(UTC)


def iso_date(text: str) -> date:
    """A calendar day, YYYY-MM-DD (a Europe/Paris day wherever velibcast takes a date)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2022-05-26") from None


def check_range(start: datetime, end: datetime, start_name: str = "--start", end_name: str = "--end") -> None:
    """A range holds at least its start: an empty or reversed one is a ConfigError before any work."""
    if end <= start:
        raise ConfigError(f"{end_name} {iso_minute(end)} must be after {start_name} {iso_minute(start)} "
                          f"({RANGE_CONVENTION})")


class _Subcommands(argparse._SubParsersAction):
    def add_parser(self, name, **kwargs):
        # a subcommand's --help opens with what it does: its one-line help unless it has a longer text
        if kwargs.get("description") is None and kwargs.get("help"):
            kwargs["description"] = kwargs["help"][0].upper() + kwargs["help"][1:] + "."
        return super().add_parser(name, **kwargs)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest the closest option of the command typed ("did you mean
    --run-date?") and the closest choice (Python 3.11's argparse has no suggest_on_error), and whose
    subcommands describe themselves in their --help."""

    _typed: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Subcommands)

    def parse_known_args(self, args=None, namespace=None):
        self._typed = tuple(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        hints = [f"did you mean {known} instead of {typed}?" for typed, known in self._close_options()]
        super().error("; ".join([message, *hints]))

    def _check_value(self, action, value):  # argparse's own hook for a value outside `choices`
        if action.choices is not None and value not in action.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices], n=1)
            if close:
                choices = ", ".join(map(repr, action.choices))
                raise argparse.ArgumentError(action, f"invalid choice: {value!r}; did you mean {close[0]!r}? "
                                                     f"(choose from {choices})")
        super()._check_value(action, value)

    def _close_options(self) -> list[tuple[str, str]]:
        """(typed, known) for each long option typed that no parser of the command takes, and the
        closest one they take."""
        known = [o for p in _command_chain(self, self._typed) for o in p._option_string_actions if o.startswith("--")]
        out = []
        for token in self._typed:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            if not name.startswith("--") or any(k.startswith(name) for k in known):  # known, or a known one's prefix
                continue
            out += [(name, m) for m in difflib.get_close_matches(name, known, n=1)]
        return out


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((dict(a.choices) for a in p._actions if isinstance(a, argparse._SubParsersAction)), {})


def _command_chain(p: argparse.ArgumentParser, typed: tuple[str, ...]) -> list[argparse.ArgumentParser]:
    """`p` and the subcommand parsers the typed words select, outermost first."""
    chain = [p]
    while sub := _subcommands(chain[-1]):
        word = next((t for t in typed if t in sub), None)
        if word is None:
            break
        chain.append(sub[word])
        typed = typed[typed.index(word) + 1:]
    return chain


def share_options(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """Each of `names` a command takes is accepted at every level of its command line, before or
    after its subcommands: `velibcast models list --config X` as `velibcast models --config X list`.

    A level whose subcommands all take the option takes it too, with their default; every level
    below the one holding the default takes it with none (SUPPRESS), so a subcommand never resets
    a value typed before it.
    """
    for name in names:
        _lift(p, name)
        _push_down(p, name)


def _lift(p: argparse.ArgumentParser, name: str) -> None:
    children = list({id(c): c for c in _subcommands(p).values()}.values())  # aliases name one parser
    for c in children:
        _lift(c, name)
    actions = [c._option_string_actions.get(name) for c in children]
    if not children or name in p._option_string_actions or any(a is None for a in actions):
        return
    defaults = {repr(a.default) for a in actions if a is not None}
    if len(defaults) != 1 or actions[0] is None or actions[0].default is argparse.SUPPRESS:
        return
    p._add_action(copy.copy(actions[0]))
    for a in actions:
        if a is not None:
            a.default = argparse.SUPPRESS


def _push_down(p: argparse.ArgumentParser, name: str, above=None) -> None:
    held = p._option_string_actions.get(name)
    if held is None and above is not None:
        held = copy.copy(above)
        p._add_action(held)
    if held is not None and above is not None:
        held.default = argparse.SUPPRESS
    for c in _subcommands(p).values():
        _push_down(c, name, held)
