"""Gepi's login rule: what the import, the admin's field and the Gepi export accept.

The text cleaning (invisible characters, accent folding) is in common.text."""

from __future__ import annotations

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
