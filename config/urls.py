from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from certification import as2_views, traffic_views
from certification import views as certification_views
from evidence import overview_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="overview", permanent=False), name="home"),
    path("overview/", overview_views.overview_page, name="overview"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", certification_views.healthz, name="healthz"),
    path("mock/<str:token>/<path:rest>", traffic_views.hosted_mock, name="hosted-mock"),
    path("inbox/<str:token>/<str:name>", traffic_views.webhook_inbox, name="webhook-inbox"),
    path("as2/<str:token>", as2_views.as2_inbound, name="as2-inbound"),
    path("partners/", include("partners.urls")),
    path("", include("certification.urls")),
    path("", include("evidence.urls")),
    path("admin/", admin.site.urls),
]
