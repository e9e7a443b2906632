"""training's API routes (reward-model and RL runs, their metrics, logs, alerts, suite and feedback,
the registry, readiness, monitor thresholds, AI judges), mounted under /api/ in the "api" namespace by
config/urls.py."""
from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/runs/", api.RunListApi.as_view(), name="runs"),
    path("runs/<int:run_id>/", api.RunDetailApi.as_view(), name="run"),
    path("runs/<int:run_id>/cancel/", api.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/retry/", api.RunRetryApi.as_view(), name="run-retry"),
    path("runs/<int:run_id>/metrics/", api.RunMetricsApi.as_view(), name="run-metrics"),
    path("runs/<int:run_id>/logs/", api.RunLogsApi.as_view(), name="run-logs"),
    path("projects/<slug:slug>/reward-models/", api.RewardModelListApi.as_view(), name="reward-models"),
    path("reward-models/<int:model_id>/", api.RewardModelDetailApi.as_view(), name="reward-model"),
    path("reward-models/<int:model_id>/select/", api.RewardModelSelectApi.as_view(), name="reward-model-select"),
    path("projects/<slug:slug>/readiness/", api.ReadinessApi.as_view(), name="readiness"),
    path("projects/<slug:slug>/rl-runs/", api.RLRunListApi.as_view(), name="rl-runs"),
    path("projects/<slug:slug>/monitor-thresholds/", api.MonitorThresholdsApi.as_view(),
         name="monitor-thresholds"),
    path("runs/<int:run_id>/alerts/", api.RunAlertsApi.as_view(), name="run-alerts"),
    path("runs/<int:run_id>/suite/", api.RunSuiteApi.as_view(), name="run-suite"),
    path("runs/<int:run_id>/feedback/", api.RunFeedbackApi.as_view(), name="run-feedback"),
    path("runs/<int:run_id>/human-suite/", api.RunHumanSuiteApi.as_view(), name="run-human-suite"),
    path("projects/<slug:slug>/routing/rm-scores/", api.RoutingRewardModelApi.as_view(), name="routing-rm-scores"),
    path("projects/<slug:slug>/judges/", api.JudgeListApi.as_view(), name="judges"),
    path("projects/<slug:slug>/judge-runs/", api.JudgeRunListApi.as_view(), name="judge-runs"),
    path("judges/<int:judge_id>/", api.JudgeDetailApi.as_view(), name="judge"),
    path("judges/<int:judge_id>/jobs/", api.JudgeJobListApi.as_view(), name="judge-jobs"),
    path("judge-jobs/<int:job_id>/", api.JudgeJobDetailApi.as_view(), name="judge-job"),
]
