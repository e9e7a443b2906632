"""annotation's API routes (projects, the annotator's queue: next, submit and skip, judgments, imports,
the spec, ranking/rewrite/negative submits, rewrites, bad cases, skills, designed data, API tokens),
mounted under /api/ in the "api" namespace by config/urls.py."""
from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/next/", api.NextItemApi.as_view(), name="next-item"),
    path("assignments/<str:handle>/submit/", api.SubmitApi.as_view(), name="submit"),
    path("projects/", api.ProjectListApi.as_view(), name="projects"),
    path("projects/<slug:slug>/", api.ProjectDetailApi.as_view(), name="project"),
    path("projects/<slug:slug>/judgments/", api.JudgmentListApi.as_view(), name="judgments"),
    path("projects/<slug:slug>/imports/", api.ImportCreateApi.as_view(), name="import-create"),
    path("projects/<slug:slug>/judgment-imports/", api.JudgmentImportApi.as_view(), name="judgment-import"),
    path("projects/<slug:slug>/spec/", api.SpecPublishApi.as_view(), name="spec-publish"),
    path("assignments/<str:handle>/rank/", api.RankingSubmitApi.as_view(), name="rank"),
    path("assignments/<str:handle>/rewrite/", api.RewriteSubmitApi.as_view(), name="rewrite-submit"),
    path("assignments/<str:handle>/negative/", api.NegativeSubmitApi.as_view(), name="negative-submit"),
    path("projects/<slug:slug>/rewrites/", api.RewriteListApi.as_view(), name="rewrites"),
    path("projects/<slug:slug>/bad-cases/", api.BadCaseApi.as_view(), name="bad-cases"),
    path("projects/<slug:slug>/skills/<str:username>/", api.SkillsApi.as_view(), name="skills"),
    path("projects/<slug:slug>/designed/", api.DesignedDataApi.as_view(), name="designed"),
    path("rewrites/<int:rewrite_id>/review/", api.RewriteReviewApi.as_view(), name="rewrite-review"),
    path("rewrites/<int:rewrite_id>/", api.RewriteReviseApi.as_view(), name="rewrite-revise"),
    path("assignments/<str:handle>/skip/", api.SkipApi.as_view(), name="skip"),
    path("judgments/<int:judgment_id>/", api.JudgmentEditApi.as_view(), name="judgment-edit"),
    path("imports/<int:job_id>/", api.ImportDetailApi.as_view(), name="import-detail"),
    path("imports/<int:job_id>/retry/", api.ImportRetryApi.as_view(), name="import-retry"),
    path("projects/<slug:slug>/production-feedback/", api.ProductionFeedbackApi.as_view(),
         name="production-feedback"),
    path("projects/<slug:slug>/production-feedback/policy/", api.FeedbackPolicyApi.as_view(),
         name="production-feedback-policy"),
    path("projects/<slug:slug>/production-feedback/tokens/", api.FeedbackTokenApi.as_view(),
         name="production-feedback-tokens"),
    path("tokens/", api.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="token"),
    path("tokens/<int:token_id>/rotate/", api.TokenRotateApi.as_view(), name="token-rotate"),
]
