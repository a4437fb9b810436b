"""Notices from the review workflow shown on pages of other apps (the dashboard).

A template tag keeps the import direction: classes' views never import generation.
"""

from django import template

from generation import selectors

register = template.Library()


@register.inclusion_tag("generation/notices.html#returned", takes_context=True)
def returned_notice(context, term) -> dict:
    """« N appréciations renvoyées par le coordonnateur », with a link per class."""
    user = context["request"].user
    return {"returned": selectors.returned_to_teacher(user=user, term=term) if term else []}
