"""Routes: each app's API under /api/ (one "api" namespace, so names stay api:<name>), the admin,
and the pages (frontend)."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation import urls as annotation_urls
from calibration import urls as calibration_urls
from rewards import urls as rewards_urls
from training import urls as training_urls

api = [
    *annotation_urls.urlpatterns,
    *calibration_urls.urlpatterns,
    *rewards_urls.urlpatterns,
    *training_urls.urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

# A database that cannot be reached is a 503 with Retry-After, even when a middleware meets it.
handler500 = "annotation.unavailable.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include((api, "api"))),
    path("", include("frontend.urls")),
]
