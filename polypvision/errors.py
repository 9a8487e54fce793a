"""Errors a user can act on.

Every problem caused by input (a path, a file, a model, a setting) is raised as a
:class:`UserError` whose message is one line saying what is wrong and what to do.
The CLI prints that line and exits with status 2; the GUI shows it in the status bar.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message is one line, written for the person at the keyboard."""

    exit_code = 2


class SourceError(UserError):
    """A frame source cannot be opened or read."""


class ContractError(UserError):
    """A model file, or the contract in its metadata, is missing or wrong."""


class OutputError(UserError):
    """An output path cannot be written."""
