"""Text helpers for what comes in (class-list imports) and what teachers validate: accent
folding and invisible characters. No Django, no database."""

from __future__ import annotations

import unicodedata


def strip_accents(text: str) -> str:
    """'Élève' -> 'Eleve': canonical decomposition, combining marks dropped; case kept.

    The one accent folding of the house: the checks' matching (generation.checks.normalize),
    the import headers (classes.imports) and the model card's subjects (generation.prompts)
    each add their own casefolding or filtering around it.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def strip_invisible(value: str) -> str:
    """The text without invisible format characters; spacing left as it is.

    Unicode's "Cf" characters (bidi overrides such as U+202E, zero-width spaces and joiners,
    stray byte order marks) are invisible on screen but travel into every file: they would
    reverse a name or a sentence on a report card, or make two equal logins differ. Control,
    line and paragraph separators and unassigned surrogates/private-use characters become
    spaces.
    """
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        kept.append(" " if category in ("Cc", "Zl", "Zp", "Cs", "Co") else char)
    return "".join(kept)


def clean_line(value: str) -> str:
    """One line of visible text: invisible characters dropped (strip_invisible), runs of
    spaces collapsed."""
    return " ".join(strip_invisible(value).split())
