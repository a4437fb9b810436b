"""The panel's form; it lists its fields."""

from __future__ import annotations

from django import forms

from .panel import REASON_MAX_CHARS

SHOWN_CHOICE_LABELS = [
    ("first", "La première est meilleure"),
    ("equal", "Équivalentes"),
    ("second", "La seconde est meilleure"),
]


class PanelJudgementForm(forms.Form):
    # The position chosen on the page, never a version: the server maps it (learning.panel).
    choice = forms.ChoiceField(choices=SHOWN_CHOICE_LABELS)
    reason = forms.CharField(
        label="Motif (facultatif)",
        required=False,
        max_length=REASON_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
