"""Errors that mean "the user asked for something invalid" (as opposed to bugs), and how a command reports them."""

from __future__ import annotations

import errno
import sys

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """Bad input: the message names the field or file and what would be valid. Scripts exit with code 2."""


def report(err: BaseException | str, code: int = EXIT_USER_ERROR) -> int:
    """What every command's main does with a `UserError`: one line on stderr, `error: <message>`; returns the exit
    code (2) for the main to return."""
    print(f"error: {err}", file=sys.stderr)
    return code


EXIT_NO_SPACE = 4
# The errors that mean "no room": a full disk, a quota, a file-size limit (RLIMIT_FSIZE).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_space(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in NO_SPACE


def report_no_space(err: OSError, where, advice: str) -> int:
    """What every command's main does with an OSError: a full disk is one line and exit code 4 (what was written
    before is intact: every write is atomic); any other OSError is re-raised, traceback and all."""
    if not no_space(err):
        raise err
    print(f"error: no space left ({err.strerror}) writing {err.filename or where}; {advice}", file=sys.stderr)
    return EXIT_NO_SPACE
