"""The model card's form: a quick draft from typed-in inputs, polled until drafted."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from classes import selectors as class_selectors
from common.http import HtmxHttpRequest

from .. import services
from ..access import (
    access_quick_draft_by_id,
)
from ..forms import (
    QuickDraftForm,
)
from ..models import QuickDraft
from ..prompts import PromptInputs
from .context import model_state


@login_required
@require_http_methods(["GET", "POST"])
def quick_draft(request: HttpRequest) -> HttpResponse:
    if request.user.school_id is None:
        raise Http404("No school")
    subjects = class_selectors.subjects_for_school(school=request.user.school)
    form = QuickDraftForm(request.POST or None, subjects=subjects)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        inputs = PromptInputs(
            subject_name=data["subject"],
            trimester=data["trimester"],
            averages=(data["average_1"], data["average_2"], data["average_3"]),
            behaviour=data["behaviour"],
            participation=data["participation"],
            work=data["work"],
        )
        quick = services.quick_draft_create(
            user=request.user, inputs=inputs, level_name=data["level"].name
        )
        return redirect("generation:quick_draft_result", quick.pk)
    return render(request, "generation/quick_draft.html", {"form": form})


@login_required
@require_GET
def quick_draft_result(request: HtmxHttpRequest, quick_pk: int) -> HttpResponse:
    quick = access_quick_draft_by_id(request.user, quick_pk)
    context = {
        "quick": quick,
        "test_model": settings.APPRECIATION_TEST_MODEL or quick.is_test_model,
        **model_state(request),
    }
    if request.htmx:
        if quick.status != QuickDraft.Status.QUEUED:
            return HttpResponseStopPolling(
                render_to_string("generation/quick_draft.html#quick_result", context, request)
            )
        return render(request, "generation/quick_draft.html#quick_result", context)
    return render(request, "generation/quick_draft.html", context)
