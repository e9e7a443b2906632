"""calibration's API routes (calibration rounds and policy, anchors, analytics, standings), mounted
under /api/ in the "api" namespace by config/urls.py."""
from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/calibration/", api.MyCalibrationApi.as_view(), name="my-calibration"),
    path("projects/<slug:slug>/calibration/next/", api.CalibrationNextApi.as_view(), name="calibration-next"),
    path("projects/<slug:slug>/calibration/policy/", api.PolicyApi.as_view(), name="calibration-policy"),
    path("projects/<slug:slug>/routing/", api.RoutingApi.as_view(), name="routing-policy"),
    path("projects/<slug:slug>/calibration/set/", api.CalibrationSetApi.as_view(), name="calibration-set"),
    path("projects/<slug:slug>/anchors/", api.AnchorListApi.as_view(), name="anchors"),
    path("projects/<slug:slug>/anchors/import/", api.AnchorImportApi.as_view(), name="anchors-import"),
    path("projects/<slug:slug>/anchors/<int:anchor_id>/", api.AnchorDetailApi.as_view(), name="anchor"),
    path("projects/<slug:slug>/analytics/", api.AnalyticsApi.as_view(), name="analytics"),
    path("projects/<slug:slug>/analytics/refresh/", api.AnalyticsRefreshApi.as_view(), name="analytics-refresh"),
    path("projects/<slug:slug>/analytics/policy/", api.AnalyticsPolicyApi.as_view(), name="analytics-policy"),
    path("projects/<slug:slug>/analytics/custom-cues/", api.CustomCuesApi.as_view(), name="custom-cues"),
    path("projects/<slug:slug>/analytics/custom-cues/<str:name>/", api.CustomCueDeleteApi.as_view(), name="custom-cue-delete"),
    path("projects/<slug:slug>/analytics/tables/<str:table>.csv", api.AnalyticsTableApi.as_view(), name="analytics-table"),
    path("projects/<slug:slug>/standings/", api.StandingListApi.as_view(), name="standings"),
    path("projects/<slug:slug>/standings/history/", api.StandingHistoryApi.as_view(), name="standing-history"),
    path("projects/<slug:slug>/standings/<str:username>/", api.StandingOverrideApi.as_view(), name="standing-override"),
    path("projects/<slug:slug>/standings/<str:username>/recalibrate/", api.RecalibrateApi.as_view(), name="recalibrate"),
    path("calibration/questions/<int:question_id>/answer/", api.CalibrationAnswerApi.as_view(), name="calibration-answer"),
]
