"""The quality dashboard's page (school admins; department heads for their subjects)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import dashboard
from .charts import bar_chart, line_chart, percent_text
from .dashboard_forms import DashboardFilterForm


def _charts(board: dashboard.Dashboard) -> dict:
    versions = board.by_version
    unchanged = bar_chart(
        chart_id="chart-unchanged",
        title="Part des brouillons validés sans modification, par version",
        desc="; ".join(
            f"{v.name} : {percent_text(v.stats.unchanged_share)} de {v.stats.validations}"
            for v in versions
        ),
        rows=[
            (v.name, v.stats.unchanged_share, percent_text(v.stats.unchanged_share))
            for v in versions
        ],
        maximum=1,
    )
    flags = bar_chart(
        chart_id="chart-flags",
        title="Part des brouillons signalés par chaque vérification",
        desc="; ".join(
            f"{label} : {percent_text(share)}" for _, label, share, _ in board.total.flag_shares
        ),
        rows=[
            (label, share, percent_text(share)) for _, label, share, _ in board.total.flag_shares
        ],
        maximum=1,
    )
    reasons = board.total.reason_counts
    thumbs = bar_chart(
        chart_id="chart-reasons",
        title="Motifs des avis « À revoir » (👎)",
        desc="; ".join(f"{label} : {count}" for label, count in reasons) or "Aucun motif donné.",
        rows=[(label, count, str(count)) for label, count in reasons],
    )
    over_time = line_chart(
        chart_id="chart-months",
        title="Part des brouillons validés sans modification, par mois et par version",
        desc="; ".join(
            f"{month.label} : "
            + ", ".join(
                f"{v.name} {percent_text(stats.unchanged_share)}"
                for v, stats in zip(versions, month.by_version, strict=True)
                if stats is not None
            )
            for month in board.months
        ),
        x_labels=[month.label for month in board.months],
        series=[
            (
                v.name,
                [
                    stats.unchanged_share if stats is not None else None
                    for stats in (month.by_version[index] for month in board.months)
                ],
            )
            for index, v in enumerate(versions)
        ],
    )
    flag_table = [
        (label, [percent_text(v.stats.flag_share(code)) for v in versions], percent_text(share))
        for code, label, share, _ in board.total.flag_shares
    ]
    month_table = [
        (
            month.label,
            [
                f"{percent_text(stats.unchanged_share)} ({stats.validations})" if stats else "—"
                for stats in month.by_version
            ],
            month.total,
        )
        for month in board.months
    ]
    return {
        "unchanged": unchanged,
        "flags": flags,
        "reasons": thumbs,
        "months": over_time,
        "flag_table": flag_table,
        "month_table": month_table,
    }


@login_required
@require_GET
def dashboard_page(request: HttpRequest) -> HttpResponse:
    choices = dashboard.dashboard_filter_choices(user=request.user)
    form = DashboardFilterForm(request.GET or None, **choices)
    filters = form.filters() if request.GET else dashboard.DashboardFilters()
    board = dashboard.quality_dashboard(user=request.user, filters=filters)
    scope = dashboard.dashboard_scope(user=request.user)
    return render(
        request,
        "learning/dashboard.html",
        {
            "form": form,
            "board": board,
            "charts": _charts(board) if board.total.validations else None,
            "scope": scope,
            "headed_subjects": scope.subjects() if scope.subject_ids is not None else None,
        },
    )
