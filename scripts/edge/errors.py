"""The two ways a change to the edge can fail, for every layer that changes it."""

from __future__ import annotations


class DeployError(RuntimeError):
    """Something stopped a change; the message says what still serves and what to do."""


class LiveChangeError(DeployError):
    """A failure after `current` was switched that could not be fully undone, or after the new
    revision went live: the message says what serves now."""
