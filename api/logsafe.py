"""Values from requests, made safe to put in a log line.

A decision id, a file name or a URL path comes from the caller. Written to a log as it is, a
carriage return or line feed in it forges a second log line, and an escape sequence rewrites
what a terminal shows. `printable` escapes every non-printable character (and the backslash,
so that an escape in the log is never ambiguous) the way Python's `repr` spells them.
"""

from __future__ import annotations

__all__ = ["printable"]


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    # unicode_escape spells \n, \r, \t by name and the rest as \xNN, \uNNNN or \UNNNNNNNN.
    return char.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def printable(value: object) -> str:
    r"""`value` as text with control, separator and other non-printable characters escaped.

    Parameters
    ----------
    value
        Anything; it is converted with `str` first.

    Returns
    -------
    str
        The same text where it is printable (the common case, returned unchanged), else
        with ``\r``, ``\n``, ``\x1b``, ``\u2028`` ... in place of those characters.

    Examples
    --------
    >>> printable("dec-1\r\nINFO forged")
    'dec-1\\r\\nINFO forged'
    """
    text = str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(char if char.isprintable() and char != "\\" else _escape(char) for char in text)
