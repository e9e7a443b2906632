from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation import api as annotation_api
from calibration import api as calibration_api
from rewards import api as rewards_api
from training import api as training_api

api = [
    path("projects/", annotation_api.ProjectListApi.as_view(), name="projects"),
    path("projects/<slug:slug>/", annotation_api.ProjectDetailApi.as_view(), name="project"),
    path("projects/<slug:slug>/next/", calibration_api.NextItemApi.as_view(), name="next-item"),
    path("projects/<slug:slug>/calibration/", calibration_api.MyCalibrationApi.as_view(), name="my-calibration"),
    path("projects/<slug:slug>/calibration/next/", calibration_api.CalibrationNextApi.as_view(), name="calibration-next"),
    path("projects/<slug:slug>/calibration/policy/", calibration_api.PolicyApi.as_view(), name="calibration-policy"),
    path("projects/<slug:slug>/calibration/set/", calibration_api.CalibrationSetApi.as_view(), name="calibration-set"),
    path("projects/<slug:slug>/anchors/", calibration_api.AnchorListApi.as_view(), name="anchors"),
    path("projects/<slug:slug>/anchors/import/", calibration_api.AnchorImportApi.as_view(), name="anchors-import"),
    path("projects/<slug:slug>/anchors/<int:anchor_id>/", calibration_api.AnchorDetailApi.as_view(), name="anchor"),
    path("projects/<slug:slug>/analytics/", calibration_api.AnalyticsApi.as_view(), name="analytics"),
    path("projects/<slug:slug>/analytics/refresh/", calibration_api.AnalyticsRefreshApi.as_view(), name="analytics-refresh"),
    path("projects/<slug:slug>/analytics/policy/", calibration_api.AnalyticsPolicyApi.as_view(), name="analytics-policy"),
    path("projects/<slug:slug>/analytics/tables/<str:table>.csv", calibration_api.AnalyticsTableApi.as_view(), name="analytics-table"),
    path("projects/<slug:slug>/standings/", calibration_api.StandingListApi.as_view(), name="standings"),
    path("projects/<slug:slug>/standings/history/", calibration_api.StandingHistoryApi.as_view(), name="standing-history"),
    path("projects/<slug:slug>/standings/<str:username>/", calibration_api.StandingOverrideApi.as_view(), name="standing-override"),
    path("projects/<slug:slug>/standings/<str:username>/recalibrate/", calibration_api.RecalibrateApi.as_view(), name="recalibrate"),
    path("projects/<slug:slug>/judgments/", annotation_api.JudgmentListApi.as_view(), name="judgments"),
    path("projects/<slug:slug>/imports/", annotation_api.ImportCreateApi.as_view(), name="import-create"),
    path("projects/<slug:slug>/spec/", annotation_api.SpecPublishApi.as_view(), name="spec-publish"),
    path("projects/<slug:slug>/export/", rewards_api.PreferenceExportApi.as_view(), name="export"),
    path("projects/<slug:slug>/sets/", rewards_api.PreferenceSetListApi.as_view(), name="sets"),
    path("sets/<int:set_id>/", rewards_api.PreferenceSetDetailApi.as_view(), name="set"),
    path("freezes/<int:request_id>/", rewards_api.FreezeDetailApi.as_view(), name="freeze"),
    path("sets/<int:set_id>/export/", rewards_api.PreferenceSetExportApi.as_view(), name="set-export"),
    path("sets/<int:set_id>/manifest/", rewards_api.PreferenceSetManifestApi.as_view(), name="set-manifest"),
    path("sets/<int:set_id>/diff/<int:other_id>/", rewards_api.PreferenceSetDiffApi.as_view(), name="set-diff"),
    path("projects/<slug:slug>/runs/", training_api.RunListApi.as_view(), name="runs"),
    path("runs/<int:run_id>/", training_api.RunDetailApi.as_view(), name="run"),
    path("runs/<int:run_id>/cancel/", training_api.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/retry/", training_api.RunRetryApi.as_view(), name="run-retry"),
    path("runs/<int:run_id>/metrics/", training_api.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<int:run_id>/logs/", training_api.RunLogsApi.as_view(), name="run-logs"),
    path("projects/<slug:slug>/reward-models/", training_api.RewardModelListApi.as_view(), name="reward-models"),
    path("reward-models/<int:model_id>/", training_api.RewardModelDetailApi.as_view(), name="reward-model"),
    path("reward-models/<int:model_id>/select/", training_api.RewardModelSelectApi.as_view(), name="reward-model-select"),
    path("projects/<slug:slug>/readiness/", training_api.ReadinessApi.as_view(), name="readiness"),
    path("projects/<slug:slug>/rl-runs/", training_api.RLRunListApi.as_view(), name="rl-runs"),
    path("projects/<slug:slug>/monitor-thresholds/", training_api.MonitorThresholdsApi.as_view(),
         name="monitor-thresholds"),
    path("runs/<int:run_id>/alerts/", training_api.RunAlertsApi.as_view(), name="run-alerts"),
    path("runs/<int:run_id>/suite/", training_api.RunSuiteApi.as_view(), name="run-suite"),
    path("runs/<int:run_id>/feedback/", training_api.RunFeedbackApi.as_view(), name="run-feedback"),
    path("assignments/<str:handle>/submit/", calibration_api.SubmitApi.as_view(), name="submit"),
    path("calibration/questions/<int:question_id>/answer/", calibration_api.CalibrationAnswerApi.as_view(), name="calibration-answer"),
    path("assignments/<str:handle>/rank/", annotation_api.RankingSubmitApi.as_view(), name="rank"),
    path("assignments/<str:handle>/rewrite/", annotation_api.RewriteSubmitApi.as_view(), name="rewrite-submit"),
    path("assignments/<str:handle>/negative/", annotation_api.NegativeSubmitApi.as_view(), name="negative-submit"),
    path("projects/<slug:slug>/rewrites/", annotation_api.RewriteListApi.as_view(), name="rewrites"),
    path("projects/<slug:slug>/bad-cases/", annotation_api.BadCaseApi.as_view(), name="bad-cases"),
    path("projects/<slug:slug>/skills/<str:username>/", annotation_api.SkillsApi.as_view(), name="skills"),
    path("projects/<slug:slug>/designed/", annotation_api.DesignedDataApi.as_view(), name="designed"),
    path("rewrites/<int:rewrite_id>/review/", annotation_api.RewriteReviewApi.as_view(), name="rewrite-review"),
    path("rewrites/<int:rewrite_id>/", annotation_api.RewriteReviseApi.as_view(), name="rewrite-revise"),
    path("assignments/<str:handle>/skip/", annotation_api.SkipApi.as_view(), name="skip"),
    path("judgments/<int:judgment_id>/", annotation_api.JudgmentEditApi.as_view(), name="judgment-edit"),
    path("imports/<int:job_id>/", annotation_api.ImportDetailApi.as_view(), name="import-detail"),
    path("imports/<int:job_id>/retry/", annotation_api.ImportRetryApi.as_view(), name="import-retry"),
    path("freezes/<int:request_id>/retry/", rewards_api.FreezeRetryApi.as_view(), name="freeze-retry"),
    path("tokens/", annotation_api.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", annotation_api.TokenDetailApi.as_view(), name="token"),
    path("tokens/<int:token_id>/rotate/", annotation_api.TokenRotateApi.as_view(), name="token-rotate"),
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
