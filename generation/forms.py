"""Forms of the review pages; every form lists its fields."""

from __future__ import annotations

from django import forms

from classes.models import Level

from .models import Feedback, FinalTexts

TRIMESTER_CHOICES = [(1, "1er trimestre"), (2, "2e trimestre"), (3, "3e trimestre")]


class ValidateForm(forms.Form):
    # No max_length here: the service says what is too long, in the teacher's words.
    text = forms.CharField(label="Appréciation", required=False, widget=forms.Textarea)
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    seconds_spent = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)
    # The draft the text was taken from (an offered or earlier one), and the teacher's
    # confirmation of a text the checks flag.
    draft = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)


class ProgressForm(forms.Form):
    """The progress poll: the rows changed since this instant are sent again."""

    since = forms.DateTimeField(required=False)


class JobStartForm(forms.Form):
    """« Générer » for the class, or one student (« Régénérer »)."""

    student = forms.IntegerField(min_value=1, required=False)
    finals = forms.ChoiceField(choices=FinalTexts.choices, required=False, initial=FinalTexts.SKIP)


class VersionForm(forms.Form):
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class ReturnForm(forms.Form):
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    comment = forms.CharField(label="Commentaire pour l'enseignant", max_length=1000)


class FeedbackForm(forms.Form):
    rating = forms.ChoiceField(choices=Feedback.Rating.choices)
    reason = forms.ChoiceField(choices=[("", "—"), *Feedback.Reason.choices], required=False)


def _slider(maximum: int, step: str, initial: float) -> forms.DecimalField:
    return forms.DecimalField(
        min_value=0,
        max_value=maximum,
        decimal_places=2,
        initial=initial,
        widget=forms.NumberInput(attrs={"type": "range", "min": 0, "max": maximum, "step": step}),
    )


class QuickDraftForm(forms.Form):
    """The model card's form: subject, level, trimester, the three averages, three sliders."""

    subject = forms.ChoiceField(label="Discipline")
    level = forms.ModelChoiceField(label="Niveau", queryset=Level.objects.all(), empty_label=None)
    trimester = forms.TypedChoiceField(
        label="Trimestre", choices=TRIMESTER_CHOICES, coerce=int, initial=1
    )
    average_1 = _slider(20, "0.5", 10)
    average_2 = _slider(20, "0.5", 10)
    average_3 = _slider(20, "0.5", 10)
    behaviour = _slider(10, "0.5", 5)
    participation = _slider(10, "0.5", 5)
    work = _slider(10, "0.5", 5)

    def __init__(self, *args, subjects=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subject"].choices = [(s.name, s.name) for s in subjects]
        labels = {
            "average_1": "Moyenne au premier trimestre",
            "average_2": "Moyenne au deuxième trimestre",
            "average_3": "Moyenne au troisième trimestre",
            "behaviour": "Comportement (0 à 10)",
            "participation": "Participation (0 à 10)",
            "work": "Travail (0 à 10)",
        }
        for name, label in labels.items():
            self.fields[name].label = label
