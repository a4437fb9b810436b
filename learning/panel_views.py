"""The panel's pages: one pair to judge at a time (next via htmx), and the results."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from common.http import HtmxHttpRequest

from . import panel
from .panel_forms import PanelJudgementForm


def _item_context(request: HttpRequest, **extra) -> dict:
    item = panel.panel_next_item(user=request.user)
    return {
        "shown": panel.shown_item(user=request.user, item=item) if item else None,
        "form": PanelJudgementForm(),
        "remaining": panel.panel_remaining_count(user=request.user),
        "judged": panel.panel_judged_count(user=request.user),
        **extra,
    }


@login_required
@require_GET
def panel_page(request: HttpRequest) -> HttpResponse:
    panel.ensure_panel_member(request.user)
    return render(request, "learning/panel.html", _item_context(request))


@login_required
@require_POST
def panel_judge(request: HtmxHttpRequest, item_pk: int) -> HttpResponse:
    item = panel.access_panel_item_by_id(request.user, item_pk)
    form = PanelJudgementForm(request.POST)
    error = ""
    try:
        if not form.is_valid():
            raise ValidationError("Choisissez l'une des trois réponses (le motif est facultatif).")
        panel.panel_judgement_record(
            user=request.user,
            item=item,
            shown_choice=form.cleaned_data["choice"],
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if request.htmx:
        notice = "" if error else "Merci : votre choix est enregistré."
        return render(
            request,
            "learning/panel.html#panel_item",
            _item_context(request, error=error, notice=notice),
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Merci : votre choix est enregistré.")
    return redirect("learning:panel")


@login_required
@require_GET
def panel_results_page(request: HttpRequest) -> HttpResponse:
    panel.ensure_panel_member(request.user)
    return render(request, "learning/panel_results.html", {"results": panel.panel_results()})
