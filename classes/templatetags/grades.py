from django import template

from classes.grades import format_grade

register = template.Library()


@register.filter
def grade(value) -> str:
    """12.50 → « 12,5 », None → « — »."""
    return format_grade(value) or "—"
