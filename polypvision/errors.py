"""Errors a user can act on.

Every problem caused by input (a path, a file, a model, a setting) is raised as a
:class:`UserError` whose message is one line saying what is wrong and what to do.
The CLI prints that line and exits with status 2; the GUI shows it in the status bar.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """Bad input: the message is one line, written for the person at the keyboard."""

    exit_code = 2


class SourceError(UserError):
    """A frame source cannot be opened or read."""


class ContractError(UserError):
    """A model file, or the contract in its metadata, is missing or wrong."""


class OutputError(UserError):
    """An output path cannot be written."""


def describe_error(exc: BaseException) -> str:
    """The one line a user sees: UserError messages as written, anything else with its type."""
    if isinstance(exc, UserError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


CAUSE_CHARS = 240
# onnxruntime wraps its reason in boilerplate: a status prefix, "Load model from PATH failed:",
# and the C++ source location with the full signature of the function that raised.
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_ORT_LOAD = re.compile(r"Load model from .*? failed:\s*")
_CPP_WHERE = re.compile(
    r"/\S+\.(?:cc|cpp|h):\d+\s+(?:[\w:~<>]+\([^()]*(?:\([^()]*\)[^()]*)*\)\s*)?"
)


def cause_line(error: BaseException | str, limit: int = CAUSE_CHARS) -> str:
    """The part of a library's error message that says why, in at most ``limit`` characters.

    Cutting a message at a fixed length keeps its preamble (a path, a status code, a source
    location) and drops the reason, which libraries put last; so the boilerplate goes first,
    and a message still too long keeps its head and its end.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    text = " ".join(text.split())  # one line
    text = _CPP_WHERE.sub("", _ORT_LOAD.sub("", _ORT_PREFIX.sub("", text))).strip() or text
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head].rstrip() + " \u2026 " + text[-(limit - head - 3) :].lstrip()
