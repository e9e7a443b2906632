"""rewards's API routes (live export, preference sets and their freezes, exports, manifests and diffs),
mounted under /api/ in the "api" namespace by config/urls.py."""
from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/export/", api.PreferenceExportApi.as_view(), name="export"),
    path("projects/<slug:slug>/sets/", api.PreferenceSetListApi.as_view(), name="sets"),
    path("sets/<int:set_id>/", api.PreferenceSetDetailApi.as_view(), name="set"),
    path("freezes/<int:request_id>/", api.FreezeDetailApi.as_view(), name="freeze"),
    path("sets/<int:set_id>/export/", api.PreferenceSetExportApi.as_view(), name="set-export"),
    path("sets/<int:set_id>/manifest/", api.PreferenceSetManifestApi.as_view(), name="set-manifest"),
    path("sets/<int:set_id>/diff/<int:other_id>/", api.PreferenceSetDiffApi.as_view(), name="set-diff"),
    path("freezes/<int:request_id>/retry/", api.FreezeRetryApi.as_view(), name="freeze-retry"),
]
