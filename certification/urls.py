from __future__ import annotations

from django.urls import path

from certification import run_views, views

app_name = "certification"
urlpatterns = [
    path("suites/", views.suite_list, name="suite_list"),
    path("suites/new/", views.suite_upload, name="suite_upload"),
    path("suites/<int:suite_id>/", views.suite_detail, name="suite_detail"),
    path("runs/", views.run_list, name="run_list"),
    path("runs/<int:run_id>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/scenario/", run_views.run_scenario, name="run_scenario"),
    path("runs/<int:run_id>/scenarios/", run_views.run_scenarios, name="run_scenarios"),
    path("runs/<int:run_id>/compare/", run_views.run_compare, name="run_compare"),
    path("runs/<int:run_id>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("runs/<int:run_id>/export.<str:fmt>", run_views.run_export, name="run_export"),
    path("partners/<str:partner_id>/runs/", views.run_start, name="run_start"),
    path("partners/<str:partner_id>/schedules/", views.schedule_create, name="schedule_create"),
    path(
        "partners/<str:partner_id>/schedules/<int:schedule_id>/delete/",
        views.schedule_delete,
        name="schedule_delete",
    ),
]
