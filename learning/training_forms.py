"""The form that starts a training run (superusers)."""

from __future__ import annotations

from django import forms

from .models import TrainingRun

ORIGINAL_EXTENSIONS = (".parquet", ".csv")


class TrainingRunForm(forms.Form):
    method = forms.ChoiceField(
        label="Méthode", choices=TrainingRun.Method.choices, initial=TrainingRun.Method.SFT
    )
    start_from = forms.ChoiceField(
        label="Point de départ",
        choices=TrainingRun.StartFrom.choices,
        initial=TrainingRun.StartFrom.ACTIVE,
    )
    epochs = forms.FloatField(
        label="Époques", min_value=0.1, max_value=50, required=False, initial=4
    )
    max_steps = forms.IntegerField(
        label="Nombre de pas (remplace les époques s'il est donné)",
        min_value=1,
        max_value=100_000,
        required=False,
    )
    learning_rate = forms.FloatField(
        label="Taux d'apprentissage", min_value=1e-7, max_value=1.0, required=False, initial=2e-4
    )
    batch_size = forms.IntegerField(
        label="Taille des lots", min_value=1, max_value=256, required=False, initial=8
    )
    original_dataset_path = forms.CharField(
        label="Copie locale du jeu de données d'origine (chemin sur le serveur, facultatif)",
        max_length=500,
        required=False,
        help_text="Fichier Parquet ou CSV d'eltorio/appreciation ; ses lignes vont dans la"
        " partie d'entraînement seulement.",
    )
    original_dataset_file = forms.FileField(
        label="… ou ce fichier, envoyé maintenant (Parquet ou CSV, facultatif)", required=False
    )

    field_order = [
        "method",
        "start_from",
        "epochs",
        "max_steps",
        "learning_rate",
        "batch_size",
        "original_dataset_path",
        "original_dataset_file",
    ]

    def clean_original_dataset_file(self):
        upload = self.cleaned_data.get("original_dataset_file")
        if upload and not upload.name.lower().endswith(ORIGINAL_EXTENSIONS):
            raise forms.ValidationError("Envoyez un fichier .parquet ou .csv.")
        return upload

    def clean(self):
        data = super().clean()
        if data.get("original_dataset_path") and data.get("original_dataset_file"):
            raise forms.ValidationError("Donnez un chemin ou un fichier, pas les deux.")
        return data

    def run_settings(self) -> dict:
        return {
            key: self.cleaned_data[key]
            for key in ("epochs", "max_steps", "learning_rate", "batch_size")
            if self.cleaned_data.get(key) not in (None, "")
        }
