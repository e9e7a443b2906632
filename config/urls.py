from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation import api as annotation_api
from rewards import api as rewards_api

api = [
    path("projects/", annotation_api.ProjectListApi.as_view(), name="projects"),
    path("projects/<slug:slug>/", annotation_api.ProjectDetailApi.as_view(), name="project"),
    path("projects/<slug:slug>/next/", annotation_api.NextItemApi.as_view(), name="next-item"),
    path("projects/<slug:slug>/judgments/", annotation_api.JudgmentListApi.as_view(), name="judgments"),
    path("projects/<slug:slug>/imports/", annotation_api.ImportCreateApi.as_view(), name="import-create"),
    path("projects/<slug:slug>/spec/", annotation_api.SpecPublishApi.as_view(), name="spec-publish"),
    path("projects/<slug:slug>/export/", rewards_api.PreferenceExportApi.as_view(), name="export"),
    path("assignments/<int:assignment_id>/submit/", annotation_api.SubmitApi.as_view(), name="submit"),
    path("assignments/<int:assignment_id>/skip/", annotation_api.SkipApi.as_view(), name="skip"),
    path("judgments/<int:judgment_id>/", annotation_api.JudgmentEditApi.as_view(), name="judgment-edit"),
    path("imports/<int:job_id>/", annotation_api.ImportDetailApi.as_view(), name="import-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include((api, "api"))),
    path("", include("frontend.urls")),
]
