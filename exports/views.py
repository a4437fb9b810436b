"""What leaves the platform: report-card exports, the copy view for Pronote, the dataset.

Who may export (anyone else gets the same 404 as a missing object):
- a class × subject: the assignment's own teacher, and the department heads of that subject;
- a whole class (every subject, for the class council): any teacher with an assignment in
  that class, and the school admin. The professeur principal is not modelled, so every teacher
  of the class stands in for them;
- the feedback dataset: the school admin, their school's feedback only.
"""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from audit.models import AuditEvent
from audit.services import audit_record
from classes import selectors as class_selectors
from classes.access import access_assignment_and_term_by_id
from classes.models import Term

from . import builders, dataset, selectors
from .access import access_class_and_term_by_id, exportable_classes
from .selectors import ClassExport

# format -> (button label, help text). Gepi's file is per class × subject only.
REPORT_FORMATS = {
    "csv": ("CSV (tableur)", "UTF-8, séparateur « ; », pour Excel ou LibreOffice."),
    "gepi": (
        "Fichier d'import Gepi",
        "IDENTIFIANT (login Gepi);NOTE (la moyenne, vide s'il n'y en a pas);Appréciation.",
    ),
    "xlsx": ("Classeur Excel (XLSX)", "Les appréciations, et les manquantes sur une 2e feuille."),
    "pdf": ("PDF imprimable", "La classe entière, pour relire ou pour le conseil de classe."),
}
CLASS_FORMATS = ("csv", "xlsx", "pdf")


class DatasetFilterForm(forms.Form):
    depuis = forms.DateField(
        label="Validées depuis le",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )


def _attachment(content: bytes, *, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _basename(export: ClassExport) -> str:
    subject = export.subject.name if export.subject else "toutes-disciplines"
    parts = (
        export.school_class.name,
        subject,
        f"t{export.term.number}",
        export.term.school_year.name,
    )
    return slugify("-".join(parts)) or "appreciations"


def _report_file(export: ClassExport, *, fmt: str) -> HttpResponse:
    heading = export.heading()
    name = _basename(export)
    if fmt == "csv":
        content = builders.report_csv(heading=heading, lines=export.lines())
        return _attachment(
            content, filename=f"appreciations-{name}.csv", content_type=builders.CSV_CONTENT_TYPE
        )
    if fmt == "gepi":
        content = builders.report_gepi(lines=export.lines(gepi=True))
        return _attachment(
            content, filename=f"gepi-{name}.csv", content_type=builders.CSV_CONTENT_TYPE
        )
    if fmt == "xlsx":
        content = builders.report_xlsx(
            heading=heading, lines=export.lines(), missing=export.missing_lines()
        )
        return _attachment(
            content, filename=f"appreciations-{name}.xlsx", content_type=builders.XLSX_CONTENT_TYPE
        )
    content = builders.report_pdf(
        heading=heading,
        lines=export.lines(),
        missing=export.missing_lines(),
        generated_on=timezone.localdate(),
    )
    return _attachment(
        content, filename=f"appreciations-{name}.pdf", content_type=builders.PDF_CONTENT_TYPE
    )


def _audit_export(request: HttpRequest, export: ClassExport, *, fmt: str, assignment=None) -> None:
    """Every export shows the texts of a whole class: each one goes in the audit log."""
    scope = {"scope": "class", "class_id": export.school_class.pk}
    if assignment is not None:
        scope = {
            "scope": "assignment",
            "assignment_id": assignment.pk,
            "class_id": assignment.school_class_id,
            "subject_id": assignment.subject_id,
        }
    audit_record(
        event=AuditEvent.Event.EXPORT,
        request=request,
        fmt=fmt,
        term_id=export.term.pk,
        appreciations=len(export.entries),
        missing=len(export.missing),
        **scope,
    )


def _screen_context(
    *, export: ClassExport, tabs: list[tuple[Term, str]], downloads: list[dict], copy_url: str
) -> dict:
    return {
        "page": "screen",
        "export": export,
        "tabs": tabs,
        "downloads": downloads,
        "copy_url": copy_url,
        "has_gepi": any(d["fmt"] == "gepi" for d in downloads),
    }


def _downloads(url_name: str, args: list, formats) -> list[dict]:
    return [
        {
            "fmt": fmt,
            "label": REPORT_FORMATS[fmt][0],
            "help": REPORT_FORMATS[fmt][1],
            "url": reverse(url_name, args=[*args, fmt]),
        }
        for fmt in formats
    ]


# --- Index -------------------------------------------------------------------------------------


def _terms_by_year(*, school_id: int) -> dict[int, list[Term]]:
    terms: dict[int, list[Term]] = {}
    for term in Term.objects.filter(school_year__school_id=school_id).order_by("number"):
        terms.setdefault(term.school_year_id, []).append(term)
    return terms


@login_required
@require_GET
def export_index(request: HttpRequest) -> HttpResponse:
    """What the user may export: their classes × subjects, whole classes, the dataset (admin)."""
    user = request.user
    if user.school_id is None:
        raise Http404("No school")
    terms = _terms_by_year(school_id=user.school_id)
    assignments = [
        (assignment, terms.get(assignment.school_class.school_year_id, []))
        for assignment in class_selectors.visible_assignments(user=user)
    ]
    classes = [
        (school_class, terms.get(school_class.school_year_id, []))
        for school_class in exportable_classes(user=user)
    ]
    context = {"page": "index", "assignments": assignments, "classes": classes}
    if user.is_school_admin:
        form = DatasetFilterForm(request.GET or None)
        since = _since(form)
        context["dataset_form"] = form
        context["dataset"] = [
            {
                "fmt": fmt,
                "selection": dataset.dataset_selection(
                    fmt=fmt, school_id=user.school_id, since=since
                ),
                "url": reverse("exports:dataset_file", args=[fmt])
                + (f"?depuis={form.cleaned_data['depuis'].isoformat()}" if since else ""),
            }
            for fmt in builders.DATASET_FORMATS
        ]
    return render(request, "generation/exports.html", context)


# --- One class × subject × term ----------------------------------------------------------------


def _assignment_export(request: HttpRequest, assignment_pk: int, term_pk: int):
    # Own assignments and, for a department head, those of the subjects they head.
    assignment, term = access_assignment_and_term_by_id(
        request.user, assignment_pk, term_pk, scope="visible"
    )
    return assignment, selectors.assignment_export(assignment=assignment, term=term)


@login_required
@require_GET
def assignment_page(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, export = _assignment_export(request, assignment_pk, term_pk)
    tabs = [
        (t, reverse("exports:assignment", args=[assignment.pk, t.pk]))
        for t in class_selectors.terms_of_year(school_class=assignment.school_class)
    ]
    context = _screen_context(
        export=export,
        tabs=tabs,
        downloads=_downloads(
            "exports:assignment_file", [assignment.pk, export.term.pk], REPORT_FORMATS
        ),
        copy_url=reverse("exports:assignment_copy", args=[assignment.pk, export.term.pk]),
    )
    context["assignment"] = assignment
    return render(request, "generation/exports.html", context)


@login_required
@require_GET
@never_cache
def assignment_file(
    request: HttpRequest, assignment_pk: int, term_pk: int, fmt: str
) -> HttpResponse:
    if fmt not in REPORT_FORMATS:
        raise Http404("Unknown export format")
    assignment, export = _assignment_export(request, assignment_pk, term_pk)
    response = _report_file(export, fmt=fmt)
    _audit_export(request, export, fmt=fmt, assignment=assignment)
    return response


@login_required
@require_GET
def assignment_copy(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    assignment, export = _assignment_export(request, assignment_pk, term_pk)
    _audit_export(request, export, fmt="copy", assignment=assignment)
    return render(
        request,
        "generation/copy_all.html",
        {
            "export": export,
            "blocks": export.copy_blocks(),
            "back_url": reverse("exports:assignment", args=[assignment.pk, export.term.pk]),
        },
    )


# --- A whole class (every subject) -------------------------------------------------------------


def _class_export(request: HttpRequest, class_pk: int, term_pk: int) -> ClassExport:
    school_class, term = access_class_and_term_by_id(request.user, class_pk, term_pk)
    return selectors.class_export(school_class=school_class, term=term)


@login_required
@require_GET
def class_page(request: HttpRequest, class_pk: int, term_pk: int) -> HttpResponse:
    export = _class_export(request, class_pk, term_pk)
    tabs = [
        (t, reverse("exports:class", args=[class_pk, t.pk]))
        for t in class_selectors.terms_of_year(school_class=export.school_class)
    ]
    context = _screen_context(
        export=export,
        tabs=tabs,
        downloads=_downloads("exports:class_file", [class_pk, export.term.pk], CLASS_FORMATS),
        copy_url=reverse("exports:class_copy", args=[class_pk, export.term.pk]),
    )
    return render(request, "generation/exports.html", context)


@login_required
@require_GET
@never_cache
def class_file(request: HttpRequest, class_pk: int, term_pk: int, fmt: str) -> HttpResponse:
    if fmt not in CLASS_FORMATS:
        raise Http404("Unknown export format")
    export = _class_export(request, class_pk, term_pk)
    response = _report_file(export, fmt=fmt)
    _audit_export(request, export, fmt=fmt)
    return response


@login_required
@require_GET
def class_copy(request: HttpRequest, class_pk: int, term_pk: int) -> HttpResponse:
    export = _class_export(request, class_pk, term_pk)
    _audit_export(request, export, fmt="copy")
    return render(
        request,
        "generation/copy_all.html",
        {
            "export": export,
            "blocks": export.copy_blocks(),
            "back_url": reverse("exports:class", args=[class_pk, export.term.pk]),
        },
    )


# --- The feedback dataset (school admins) ------------------------------------------------------


def _since(form: DatasetFilterForm) -> datetime | None:
    if not form.is_bound or not form.is_valid() or form.cleaned_data["depuis"] is None:
        return None
    return timezone.make_aware(datetime.combine(form.cleaned_data["depuis"], time.min))


@login_required
@require_GET
@never_cache
def dataset_file(request: HttpRequest, fmt: str) -> HttpResponse:
    """The school's feedback dataset: no names, no identifiers, rows quoting a grade left out."""
    user = request.user
    if not user.is_school_admin or user.school_id is None or fmt not in builders.DATASET_FORMATS:
        raise Http404("Not available")
    form = DatasetFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        messages.error(request, "Date invalide : choisissez une date dans le calendrier.")
        return redirect("exports:index")
    since = _since(form)
    selection = dataset.dataset_selection(fmt=fmt, school_id=user.school_id, since=since)
    content = builders.DATASET_BUILDERS[fmt](selection.rows)
    audit_record(
        event=AuditEvent.Event.DATASET_DOWNLOAD,
        request=request,
        fmt=fmt,
        since=since.isoformat() if since else None,
        rows=len(selection.rows),
        left_out=selection.left_out_count,
    )
    stamp = timezone.localdate().isoformat()
    return _attachment(
        content,
        filename=f"retours-{fmt}-{stamp}.{builders.DATASET_EXTENSIONS[fmt]}",
        content_type=builders.DATASET_CONTENT_TYPES[fmt],
    )
