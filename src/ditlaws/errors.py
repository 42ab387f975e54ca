"""Errors that mean "the user asked for something invalid" (as opposed to bugs)."""


class UserError(ValueError):
    """Bad input: the message names the field or file and what would be valid. Scripts exit with code 2."""
