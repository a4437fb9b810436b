"""The training page (superusers): start a run, follow runs (HTMX polling), cancel one, and
the schools whose feedback may train shared models, with their row counts."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from common.http import HtmxHttpRequest

from . import training_selectors as selectors
from .services import training as services
from .training_access import access_training_run_by_id, require_superuser
from .training_forms import TrainingRunForm

TEMPLATE = "learning/training.html"


def _page(request: HttpRequest, form: TrainingRunForm, *, status: int = 200) -> HttpResponse:
    runs = selectors.training_runs_recent()
    context = {
        "form": form,
        "runs": runs,
        "polling": selectors.training_runs_any_active(runs),
        "schools": selectors.opted_in_schools_with_rows(),
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def training_page(request: HttpRequest) -> HttpResponse:
    require_superuser(request.user)
    return _page(request, TrainingRunForm())


@login_required
@require_POST
def training_run_start(request: HttpRequest) -> HttpResponse:
    require_superuser(request.user)
    form = TrainingRunForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, form)
    try:
        path = form.cleaned_data["original_dataset_path"]
        upload = form.cleaned_data.get("original_dataset_file")
        if upload:
            path = services.original_dataset_store(user=request.user, upload=upload)
        run = services.training_run_create(
            user=request.user,
            method=form.cleaned_data["method"],
            start_from=form.cleaned_data["start_from"],
            settings=form.run_settings(),
            original_dataset_path=path,
        )
    except services.TrainingRefused as exc:
        form.add_error(None, str(exc))
        return _page(request, form)
    messages.success(
        request, f"Entraînement n° {run.pk} mis en file d'attente sur le serveur de calcul."
    )
    return redirect("learning:training")


@login_required
@require_GET
def training_runs(request: HtmxHttpRequest) -> HttpResponse:
    """The runs' table, polled while one is queued or running."""
    require_superuser(request.user)
    runs = selectors.training_runs_recent()
    polling = selectors.training_runs_any_active(runs)
    context = {"runs": runs, "polling": polling}
    html = render_to_string(f"{TEMPLATE}#runs", context, request)
    if request.htmx and not polling:
        return HttpResponseStopPolling(html)
    return HttpResponse(html)


@login_required
@require_POST
def training_run_cancel(request: HtmxHttpRequest, run_pk: int) -> HttpResponse:
    run = access_training_run_by_id(request.user, run_pk)
    run = services.training_run_cancel(user=request.user, run_id=run.pk)
    if request.htmx:
        return training_runs_fragment(request)
    messages.info(request, f"Annulation de l'entraînement n° {run.pk} demandée.")
    return redirect("learning:training")


def training_runs_fragment(request: HttpRequest) -> HttpResponse:
    runs = selectors.training_runs_recent()
    context = {"runs": runs, "polling": selectors.training_runs_any_active(runs)}
    return HttpResponse(render_to_string(f"{TEMPLATE}#runs", context, request))
