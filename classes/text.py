"""Text cleaning shared by what comes in (class-list imports) and what teachers validate."""

from __future__ import annotations

import unicodedata


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


# Gepi's login: what its import file matches. A space, `;`, `"` or `\` would not survive the
# file (or is no login Gepi creates).
GEPI_LOGIN_MAX_LENGTH = 50
GEPI_LOGIN_MESSAGE = (
    "un login Gepi n'a ni espace, ni « ; », ni guillemet, ni barre oblique inverse."
)


def is_gepi_login(value: str) -> bool:
    return bool(value) and not any(c.isspace() or c in ';"\\' or not c.isprintable() for c in value)


def validate_gepi_login(value: str) -> None:
    """The model field's validator (admin forms): empty is allowed, a bad login is not."""
    from django.core.exceptions import ValidationError

    if value and not is_gepi_login(value):
        raise ValidationError(GEPI_LOGIN_MESSAGE[0].upper() + GEPI_LOGIN_MESSAGE[1:])
