"""The admin's privacy actions on students: export their data (JSON), erase it; the admin's
"Supprimer" is an erasure too. Registered over classes' StudentAdmin (this app sits above)."""

from __future__ import annotations

import io
import json
import zipfile

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import slugify

from audit.models import AuditEvent
from audit.services import audit_record
from classes.admin import StudentAdmin as ClassesStudentAdmin
from classes.models import Student

from .student_data import PLACEHOLDER, ErasureReport, student_data_export, student_erase


def _erasure_message(reports: list[ErasureReport]) -> str:
    """What was removed, in counts: no name (messages are stored in the session)."""
    total = {key: sum(r.counts()[key] for r in reports) for key in reports[0].counts()}
    return (
        f"Données effacées pour {len(reports)} élève(s) : {total['assessments']} évaluation(s), "
        f"{total['appreciations']} appréciation(s) et {total['drafts']} brouillon(s) supprimés ; "
        f"{total['feedback_unlinked']} retour(s) conservé(s) sans lien avec l'élève ; "
        f"nom remplacé par « {PLACEHOLDER} » dans {total['feedback_scrubbed']} retour(s)."
    )


admin.site.unregister(Student)


@admin.register(Student)
class StudentAdmin(ClassesStudentAdmin):
    actions = ["export_student_data", "erase_student_data"]

    @admin.action(description="Exporter les données de l'élève (JSON)", permissions=["view"])
    def export_student_data(self, request, queryset):
        """One student: a JSON file; several: a zip of one JSON file per student."""
        students = list(queryset.select_related("school_class").order_by("pk"))
        if not students:
            self.message_user(request, "Aucun élève sélectionné.", messages.WARNING)
            return None
        files = []
        for student in students:
            data = student_data_export(student=student)
            content = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
            name = slugify(f"{student.last_name} {student.first_name}") or "eleve"
            files.append((f"donnees-eleve-{student.pk}-{name}.json", content))
            audit_record(
                event=AuditEvent.Event.STUDENT_DATA_EXPORT,
                request=request,
                school=student.school_class.school_id,
                student_id=student.pk,
            )
        if len(files) == 1:
            filename, content = files[0]
            response = HttpResponse(content, content_type="application/json; charset=utf-8")
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for filename, content in files:
                    archive.writestr(filename, content)
            filename = f"donnees-eleves-{timezone.localdate():%Y-%m-%d}.zip"
            response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Effacer les données de l'élève", permissions=["delete"])
    def erase_student_data(self, request, queryset):
        """A confirmation page first; then erase each student (feedback kept, pseudonymous)."""
        students = list(queryset.select_related("school_class").order_by("pk"))
        if not students:
            self.message_user(request, "Aucun élève sélectionné.", messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            with transaction.atomic():  # all the selected students, or none
                reports = [
                    student_erase(student=s, user=request.user, request=request) for s in students
                ]
            self.message_user(request, _erasure_message(reports), messages.SUCCESS)
            return None
        rows = [
            {
                "student": student,
                "assessments": student.assessments.count(),
                "appreciations": student.appreciations.count(),
                "drafts": student.drafts.count(),
            }
            for student in students
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Effacer les données des élèves sélectionnés",
            "opts": self.model._meta,
            "rows": rows,
            "queryset": students,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "placeholder": PLACEHOLDER,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/classes/student/erase_confirmation.html", context)

    def delete_model(self, request, obj):
        # The admin's "Supprimer" is an erasure too: feedback unlinked and scrubbed, audited.
        student_erase(student=obj, user=request.user, request=request)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        for student in queryset:
            student_erase(student=student, user=request.user, request=request)
