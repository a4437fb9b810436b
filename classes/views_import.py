"""Class-list import: upload a CSV/XLSX file, preview what it changes, confirm.

The parsed rows travel from the preview to the confirmation in a hidden field signed with
django.core.signing (bound to the teacher, the assignment and the term; valid one hour), and
are validated again before anything is written.
"""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .access import access_assignment_and_term_by_id
from .import_services import ImportPlan, import_apply, import_preview
from .imports import MAX_ROWS, ImportFileError, parse_class_file
from .models import TeachingAssignment, Term
from .services import ClosedTermError

logger = logging.getLogger(__name__)

PAYLOAD_MAX_AGE = 60 * 60  # seconds between the preview and the confirmation
MAX_ERRORS_SHOWN = 200

EXAMPLE_CSV = (
    "nom;prénom;redoublant;identifiant;moyenne;comportement;participation;travail\r\n"
    "Lefèvre;Chloé;non;clefevre;14,5;8;7;8\r\n"
    "Dupont;Jean-Pierre;oui;jdupont;9,25;6;5;6,5\r\n"
    "N'Diaye;Awa;;andiaye;abs;7;8;7\r\n"
)


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="Fichier de la classe (CSV ou XLSX)",
        help_text="Export de votre tableur ou du logiciel de l'établissement, 500 élèves au plus.",
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,.xlsx,.xlsm"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_BYTES
        if upload.size > limit:
            raise ValidationError(
                f"Le fichier est trop volumineux : {limit // 1024} ko au plus.", code="too_big"
            )
        return upload


def _salt(request: HttpRequest, assignment: TeachingAssignment, term: Term) -> str:
    return f"classes.import:{request.user.pk}:{assignment.pk}:{term.pk}"


def _render(
    request: HttpRequest,
    assignment: TeachingAssignment,
    term: Term,
    *,
    form: ImportUploadForm | None = None,
    errors: list[str] | None = None,
    plan: ImportPlan | None = None,
    payload: str = "",
    fix_file: bool = False,
    status: int = 200,
) -> HttpResponse:
    errors = errors or []
    return render(
        request,
        "classes/import.html",
        {
            "assignment": assignment,
            "term": term,
            "form": form or ImportUploadForm(),
            "errors": errors[:MAX_ERRORS_SHOWN],
            "hidden_error_count": max(0, len(errors) - MAX_ERRORS_SHOWN),
            "plan": plan,
            "payload": payload,
            "fix_file": fix_file,
            "max_rows": MAX_ROWS,
        },
        status=status,
    )


def _closed(request: HttpRequest, assignment: TeachingAssignment, term: Term) -> HttpResponse:
    """A closed term takes no import: back to the class page with the reason."""
    messages.error(
        request,
        "Import impossible : ce trimestre est clos, ses notes ne sont plus modifiables. "
        "Rien n'a été importé.",
    )
    return redirect("classes:class_page", assignment.pk, term.pk)


def _example_csv() -> HttpResponse:
    response = HttpResponse(EXAMPLE_CSV.encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="modele-liste-classe.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    """GET: the upload form (`?modele=csv`: an example file). POST: the preview, or the errors."""
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    if request.method == "GET" and request.GET.get("modele") == "csv":
        return _example_csv()
    if term.is_closed:
        return _closed(request, assignment, term)
    if request.method == "GET":
        return _render(request, assignment, term)

    form = ImportUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render(request, assignment, term, form=form)
    upload = form.cleaned_data["file"]
    content = upload.read(settings.IMPORT_MAX_BYTES + 1)
    try:
        parsed = parse_class_file(filename=upload.name or "", content=content)
    except ImportFileError as exc:
        logger.info("Import refused for assignment %s: %s", assignment.pk, exc.code)
        return _render(request, assignment, term, form=form, errors=exc.messages, fix_file=True)
    plan = import_preview(assignment=assignment, term=term, parsed=parsed)
    if not plan.is_valid:
        return _render(request, assignment, term, form=form, errors=plan.errors, fix_file=True)
    payload = signing.dumps(parsed.to_data(), salt=_salt(request, assignment, term), compress=True)
    return _render(
        request,
        assignment,
        term,
        form=ImportUploadForm(),
        plan=plan,
        payload=payload,
    )


@login_required
@require_POST
def import_confirm(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    """Apply the previewed import in one transaction, then back to the class page."""
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="own"
    )
    if term.is_closed:
        return _closed(request, assignment, term)
    try:
        data = signing.loads(
            request.POST.get("payload", ""),
            salt=_salt(request, assignment, term),
            max_age=PAYLOAD_MAX_AGE,
        )
    except signing.SignatureExpired:
        message = "La prévisualisation a expiré (plus d'une heure) : importez à nouveau le fichier."
        return _render(request, assignment, term, errors=[message], status=400)
    except signing.BadSignature:
        logger.warning("Import payload with a bad signature for assignment %s", assignment.pk)
        message = (
            "Les données de l'import sont invalides ou ont été modifiées : importez à nouveau "
            "le fichier."
        )
        return _render(request, assignment, term, errors=[message], status=400)
    try:
        result = import_apply(assignment=assignment, term=term, plan_data=data, user=request.user)
    except ClosedTermError:
        return _closed(request, assignment, term)
    except ValidationError as exc:
        return _render(request, assignment, term, errors=exc.messages, fix_file=True, status=400)
    logger.info(
        "Import into assignment %s term %s by user %s: %s created, %s updated",
        assignment.pk,
        term.pk,
        request.user.pk,
        result.created,
        result.updated,
    )
    messages.success(request, result.message)
    return redirect("classes:class_page", assignment.pk, term.pk)
