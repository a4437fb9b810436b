"""A problem found in a text: what the checks (generation.checks) and Grammalecte
(generation.grammar) both report, drawn by the review page and stored with the drafts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckFlag:
    code: str
    message: str
    # Grammalecte's flags (grammar, spelling, typography) name a span of the checked text,
    # in characters, the text of that span (the page checks it is still there before a
    # suggestion replaces it) and the replacements it suggests.
    start: int | None = None
    end: int | None = None
    original: str = ""
    suggestions: tuple[str, ...] = ()
