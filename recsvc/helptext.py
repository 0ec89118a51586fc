"""``--help`` for every command of ``recsvc`` and ``python -m training``: descriptions as
written (without reStructuredText markup), and each option's default beside it."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default: its own words where the help already names it,
    ``(default: X)`` otherwise, ``(default: none)`` for an option that is off unless
    given. Flags (on/off switches) and required options have no default to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.required
            or not action.option_strings
            or action.default is argparse.SUPPRESS
            or action.nargs == 0  # store_true, store_const, help, version
        ):
            return text
        if action.default is None or action.default == []:
            return f"{text} (default: none)".lstrip()
        return f"{text} (default: %(default)s)".lstrip()


def plain(doc: str | None) -> str:
    """A docstring as ``--help`` text: no reStructuredText markup."""
    return (doc or "").replace("``", "")
