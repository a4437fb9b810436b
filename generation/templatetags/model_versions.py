"""Which model version wrote a draft, as pages show it (or not: see model_versions_shown)."""

from django import template

from generation import selectors

register = template.Library()


@register.filter
def model_version_name(version) -> str:
    """The version's name (a ModelVersion or a name), or "" when there is none or while a
    blind comparison runs (APPRECIATION_CANDIDATE_SHARE above 0)."""
    if not version or not selectors.model_versions_shown():
        return ""
    return getattr(version, "name", version)
