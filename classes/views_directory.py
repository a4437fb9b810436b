"""The SIECLE / STS-web import page of the admin: upload, preview, confirm.

Reached from a school's page in the admin (« Importer SIECLE / STS-web »): a school admin
only for their own school (another school's is a 404), a superuser for any. The parsed file
travels from the preview to the confirmation in a hidden field signed with
django.core.signing (bound to the user and the school, valid one hour) and the plan is
computed again, under locks, before anything is written.
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from .invitations import invitation_days, invitation_url
from .models import School, Teacher
from .siecle import MAX_BYTES, DirectoryFileError, parse_directory_file
from .siecle_services import DirectoryPlan, directory_apply, directory_preview

logger = logging.getLogger(__name__)

PAYLOAD_MAX_AGE = 60 * 60
LIST_LIMIT = 500  # rows shown per list in the preview; the counts are always complete


class DirectoryUploadForm(forms.Form):
    file = forms.FileField(
        label="Export SIECLE ou STS-web (XML, éventuellement zippé)",
        help_text=(
            "SIECLE : « ElevesSansAdresses.xml » ; STS-web : « sts_emp_UAI_année.xml ». "
            f"{MAX_BYTES // (1024 * 1024)} Mo au plus."
        ),
        widget=forms.FileInput(attrs={"accept": ".xml,.zip"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_BYTES:
            raise ValidationError(
                f"Le fichier est trop volumineux : {MAX_BYTES // (1024 * 1024)} Mo au plus.",
                code="too_big",
            )
        return upload


def _salt(request: HttpRequest, school: School) -> str:
    return f"classes.directory:{request.user.pk}:{school.pk}"


def directory_import_view(model_admin, request: HttpRequest, school: School) -> HttpResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Importer SIECLE / STS-web — {school.name}",
        "opts": model_admin.model._meta,
        "original": school,
        "school": school,
        "form": DirectoryUploadForm(),
        "errors": [],
        "plan": None,
        "payload": "",
        "list_limit": LIST_LIMIT,
        "invitation_days": invitation_days(),
    }
    request.current_app = model_admin.admin_site.name
    template = "admin/classes/school/directory_import.html"
    status = 200
    if request.method == "POST" and "payload" in request.POST:
        try:
            data = signing.loads(
                request.POST["payload"], salt=_salt(request, school), max_age=PAYLOAD_MAX_AGE
            )
        except signing.SignatureExpired:
            context["errors"] = [
                "La prévisualisation a expiré (plus d'une heure) : déposez à nouveau le fichier."
            ]
            return TemplateResponse(request, template, context, status=400)
        except signing.BadSignature:
            logger.warning("Directory import payload with a bad signature, school %s", school.pk)
            context["errors"] = [
                "Les données de l'import sont invalides ou ont été modifiées : déposez à nouveau "
                "le fichier."
            ]
            return TemplateResponse(request, template, context, status=400)
        try:
            result = directory_apply(school=school, plan_data=data)
        except ValidationError as exc:
            context["errors"] = exc.messages
            return TemplateResponse(request, template, context, status=400)
        logger.info(
            "Directory import (%s) into school %s by user %s: %s",
            data.get("kind"),
            school.pk,
            request.user.pk,
            result.counts,
        )
        messages.success(request, result.message)
        created = Teacher.objects.filter(pk__in=result.created_teacher_ids).order_by(
            "last_name", "first_name"
        )
        context["result"] = result
        context["invitations"] = [(t, invitation_url(request, t)) for t in created]
        return TemplateResponse(request, template, context)
    if request.method == "POST":
        form = DirectoryUploadForm(request.POST, request.FILES)
        context["form"] = form
        if form.is_valid():
            upload = form.cleaned_data["file"]
            content = upload.read(MAX_BYTES + 1)
            try:
                parsed = parse_directory_file(content)
            except DirectoryFileError as exc:
                logger.info("Directory import refused for school %s: %s", school.pk, exc.code)
                context["errors"] = exc.messages
                status = 400
            else:
                plan: DirectoryPlan = directory_preview(school=school, parsed=parsed)
                if plan.is_valid:
                    context["plan"] = plan
                    context["counts"] = plan.counts()
                    context["payload"] = signing.dumps(
                        parsed.to_data(), salt=_salt(request, school), compress=True
                    )
                    context["form"] = DirectoryUploadForm()
                else:
                    context["errors"] = plan.errors
                    status = 400
    return TemplateResponse(request, template, context, status=status)
