"""One error hierarchy for the whole system.

Domain code raises these; the edges translate them once: the CLI into a
one-line message and a non-zero exit, the HTTP API into
``application/problem+json`` with the status its own table assigns. Nothing
here knows about HTTP.
"""

from __future__ import annotations


class HotlineError(Exception):
    """Base of every error a user can cause or meet; ``title`` is a short, stable kind."""

    title = "hotline error"


class InvalidInput(HotlineError, ValueError):
    """The input cannot be understood (empty text, bad date, unknown column …)."""

    title = "invalid input"


class TooLarge(InvalidInput):
    """The input is over a configured size limit."""

    title = "input too large"


class Implausible(InvalidInput):
    """Well-formed but not believable: a case dated 0001-01-01 or in 2040, a label outside the taxonomy."""

    title = "implausible value"


class Unauthorized(HotlineError):
    """No credentials, or credentials nobody issued."""

    title = "unauthorized"


class Forbidden(HotlineError):
    """Credentials whose role may not do this."""

    title = "forbidden"


class NotFound(HotlineError, LookupError):
    """A case, model or other named thing does not exist."""

    title = "not found"


class Conflict(HotlineError):
    """The request clashes with the current state (e.g. promoting a worse model)."""

    title = "conflict"


class Unavailable(HotlineError):
    """A backend (store, index) cannot be reached or refuses writes; retrying may help."""

    title = "service unavailable"


class ReadOnly(Unavailable):
    """The store cannot take writes now (read-only file, full disk); reads still work."""

    title = "store is read-only"
