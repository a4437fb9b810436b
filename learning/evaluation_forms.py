"""The form that starts an evaluation (superusers)."""

from __future__ import annotations

from django import forms

from generation.models import ModelVersion


class EvaluationStartForm(forms.Form):
    candidate = forms.ModelChoiceField(
        label="Version à évaluer",
        queryset=ModelVersion.objects.exclude(state=ModelVersion.State.ACTIVE),
        empty_label=None,
    )

    class Meta:
        fields = ("candidate",)
