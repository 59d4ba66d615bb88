from __future__ import annotations

from django.urls import path

from evidence import audit_views

# Included under "audit/" by evidence/urls.py (namespace "evidence").
urlpatterns = [
    path("", audit_views.audit_list, name="audit_list"),
    path("export.csv", audit_views.audit_export, name="audit_export"),
]
