from __future__ import annotations

from django.urls import include, path

app_name = "evidence"
urlpatterns = [
    path("audit/", include("evidence.audit_urls")),
]
