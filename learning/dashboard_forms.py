"""The quality dashboard's filters (a GET form); it lists its fields."""

from __future__ import annotations

from django import forms

from .dashboard import NO_VERSION, TRIMESTER_LABELS, DashboardFilters


class DashboardFilterForm(forms.Form):
    version = forms.ChoiceField(label="Version du modèle", required=False)
    subject = forms.TypedChoiceField(
        label="Discipline", required=False, coerce=int, empty_value=None
    )
    level = forms.TypedChoiceField(label="Niveau", required=False, coerce=int, empty_value=None)
    trimester = forms.TypedChoiceField(
        label="Trimestre",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Tous"), *TRIMESTER_LABELS.items()],
    )

    def __init__(self, *args, versions=(), subjects=(), levels=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [
            ("", "Toutes"),
            *[(str(v.pk), f"{v.name} ({v.get_state_display().lower()})") for v in versions],
            (NO_VERSION, "Non enregistrée (brouillons plus anciens)"),
        ]
        self.fields["subject"].choices = [("", "Toutes"), *[(s.pk, s.name) for s in subjects]]
        self.fields["level"].choices = [("", "Tous"), *[(lv.pk, lv.name) for lv in levels]]

    def filters(self) -> DashboardFilters:
        """The chosen filters; none when the form is invalid (a stale link)."""
        if not self.is_valid():
            return DashboardFilters()
        data = self.cleaned_data
        return DashboardFilters(
            version=data["version"] or "",
            subject_id=data["subject"],
            level_id=data["level"],
            trimester=data["trimester"],
        )
