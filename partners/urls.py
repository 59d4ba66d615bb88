from __future__ import annotations

from django.urls import path

from partners import views

app_name = "partners"
urlpatterns = [
    path("", views.partner_list, name="list"),
    path("import/", views.registry_import_upload, name="registry_import"),
    path("import/confirm/", views.registry_import_confirm, name="registry_import_confirm"),
    path("import/cancel/", views.registry_import_cancel, name="registry_import_cancel"),
    path("<str:partner_id>/", views.partner_detail, name="detail"),
    path("<str:partner_id>/endpoints/new/", views.endpoint_create, name="endpoint_create"),
    path(
        "<str:partner_id>/endpoints/<str:endpoint_id>/edit/",
        views.endpoint_edit,
        name="endpoint_edit",
    ),
    path(
        "<str:partner_id>/endpoints/<str:endpoint_id>/delete/",
        views.endpoint_delete,
        name="endpoint_delete",
    ),
]
