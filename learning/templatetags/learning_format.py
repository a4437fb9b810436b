"""French number formats for the learning pages."""

from __future__ import annotations

from django import template

from learning.charts import percent_text

register = template.Library()


@register.filter
def percent(share) -> str:
    """0.625 -> "62,5 %"; None -> "—"."""
    return percent_text(share)


@register.filter
def decimal1(value) -> str:
    """12.25 -> "12,3"; None -> "—"."""
    if value is None:
        return "—"
    return f"{value:.1f}".replace(".", ",").removesuffix(",0")
