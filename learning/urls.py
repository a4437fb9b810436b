from django.urls import path

from . import dashboard_views, panel_views

app_name = "learning"

urlpatterns = [
    # panel-dashboard (issue 13, agent 4)
    path("panel/", panel_views.panel_page, name="panel"),
    path("panel/paires/<int:item_pk>/juger/", panel_views.panel_judge, name="panel_judge"),
    path("panel/resultats/", panel_views.panel_results_page, name="panel_results"),
    path("qualite/", dashboard_views.dashboard_page, name="dashboard"),
]
