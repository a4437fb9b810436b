"""The evaluation pages (superusers): a candidate beside the active version, figure by figure,
the word counts as a chart, and whether the promotion gate passes."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import evaluation as services
from .evaluation_forms import EvaluationStartForm
from .evaluation_page import evaluation_page_context


def _superuser_only(request: HttpRequest) -> None:
    if not (request.user.is_active and request.user.is_superuser):
        raise Http404("Not a superuser")


@login_required
@require_GET
def evaluation_list(request: HttpRequest) -> HttpResponse:
    _superuser_only(request)
    return render(
        request,
        "learning/evaluations.html",
        {
            "evaluations": services.evaluations_for_user(user=request.user),
            "form": EvaluationStartForm(),
        },
    )


@login_required
@require_POST
def evaluation_start(request: HttpRequest) -> HttpResponse:
    _superuser_only(request)
    form = EvaluationStartForm(request.POST)
    if form.is_valid():
        try:
            evaluation = services.model_evaluation_create(
                user=request.user, candidate=form.cleaned_data["candidate"]
            )
        except services.EvaluationError as error:
            form.add_error(None, str(error))
        else:
            return redirect("learning:evaluation", evaluation.pk)
    return render(
        request,
        "learning/evaluations.html",
        {"evaluations": services.evaluations_for_user(user=request.user), "form": form},
        status=400,
    )


@login_required
@require_GET
def evaluation_detail(request: HttpRequest, evaluation_pk: int) -> HttpResponse:
    evaluation = services.access_model_evaluation_by_id(request.user, evaluation_pk)
    return render(request, "learning/evaluation.html", evaluation_page_context(evaluation))


@login_required
@require_GET
def version_evaluation(request: HttpRequest, version_pk: int) -> HttpResponse:
    """The latest evaluation of a version (the link from the versions' admin)."""
    version = services.access_model_version_by_id(request.user, version_pk)
    evaluation = services.latest_evaluation_of(version=version)
    if evaluation is None:
        form = EvaluationStartForm(initial={"candidate": version.pk})
        return render(request, "learning/evaluation.html", {"version": version, "form": form})
    return render(request, "learning/evaluation.html", evaluation_page_context(evaluation))
