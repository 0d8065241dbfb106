"""Flag-specific errors (all subclasses of :class:`rollwave.errors.FlagError`)."""

from __future__ import annotations

from rollwave.errors import Conflict, FlagError, NotFound


class FlagDefinitionError(FlagError):
    """A flag or segment definition cannot be compiled (bad operand, unsafe regex, cycle)."""

    code = "flag.definition"
    default_hint = "fix the named field of the flag definition; see docs/flags.md"


class UnsafeRegexError(FlagDefinitionError):
    """A regex could backtrack catastrophically or is too long."""

    code = "flag.unsafe_regex"
    default_hint = ("avoid nested or adjacent overlapping quantifiers such as (a+)+ or \\w*\\w*, "
                    "alternations under a quantifier and back-references; keep patterns short")


class FlagNotFound(NotFound):
    """No flag with this key."""

    code = "flag.not_found"
    default_hint = "list flags with GET /api/v1/flags"


class SegmentNotFound(NotFound):
    """No segment with this key."""

    code = "segment.not_found"
    default_hint = "list segments with GET /api/v1/segments"


class FlagConflict(Conflict):
    """The flag changed since it was read (the If-Match version does not match)."""

    code = "flag.conflict"
    default_hint = "re-read the flag, re-apply your change and send the new version"
