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
from .charts import interval_chart, percent_text
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
    results = panel.panel_results()
    judged = [r for r in results if r.judgements]
    chart = None
    if judged:
        chart = interval_chart(
            chart_id="chart-win-rates",
            title="Taux de victoire de la version A sur la version B, avec l'intervalle à 95 %",
            desc="; ".join(
                f"{r.version_a.name} contre {r.version_b.name} : {percent_text(r.win_rate)}"
                f" (de {percent_text(r.interval.low)} à {percent_text(r.interval.high)},"
                f" {r.judgements} jugements)"
                for r in judged
            ),
            rows=[
                (
                    f"{r.version_a.name} / {r.version_b.name}",
                    r.win_rate,
                    r.interval.low,
                    r.interval.high,
                    percent_text(r.win_rate),
                )
                for r in judged
            ],
        )
    return render(request, "learning/panel_results.html", {"results": results, "chart": chart})
