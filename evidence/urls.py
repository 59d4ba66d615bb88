from __future__ import annotations

from django.urls import include, path

from evidence import views

app_name = "evidence"
urlpatterns = [
    path("audit/", include("evidence.audit_urls")),
    path("certifications/", views.certification_list, name="certification_list"),
    path(
        "partners/<str:partner_id>/certifications/new/",
        views.certification_open,
        name="certification_open",
    ),
    path(
        "certifications/<str:certification_id>/",
        views.certification_detail,
        name="certification_detail",
    ),
    path(
        "certifications/<str:certification_id>/checklist/<str:key>/",
        views.checklist_set,
        name="checklist_set",
    ),
    path(
        "certifications/<str:certification_id>/waivers/",
        views.waiver_request,
        name="waiver_request",
    ),
    path(
        "certifications/<str:certification_id>/waivers/<str:waiver_id>/",
        views.waiver_decide,
        name="waiver_decide",
    ),
    path("certifications/<str:certification_id>/sign-off/", views.sign_off, name="sign_off"),
    path("certifications/<str:certification_id>/confirm/", views.confirm, name="confirm"),
    path("certifications/<str:certification_id>/suspend/", views.suspend, name="suspend"),
    path("certifications/<str:certification_id>/withdraw/", views.withdraw, name="withdraw"),
    path(
        "certifications/<str:certification_id>/bundle/",
        views.certification_bundle,
        name="certification_bundle",
    ),
    path("runs/<int:run_id>/evidence/", views.run_bundle, name="run_bundle"),
    path("bundles/<str:bundle_id>/", views.bundle_status, name="bundle_status"),
    path("bundles/<str:bundle_id>/download/", views.bundle_download, name="bundle_download"),
    path("api/go-live/<str:partner_id>/<str:scope>", views.go_live, name="go_live"),
    path(
        "api/go-live/<str:partner_id>/<str:scope>/badge.svg",
        views.go_live_badge,
        name="go_live_badge",
    ),
    path("about/signing-keys/", views.signing_keys, name="signing_keys"),
]
