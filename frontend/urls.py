from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("p/<slug:slug>/label/", views.label_page, name="label"),
    path("p/<slug:slug>/label/next/", views.label_next, name="label-next"),
    path("p/<slug:slug>/label/<int:assignment_id>/submit/", views.label_submit, name="label-submit"),
    path("p/<slug:slug>/label/<int:assignment_id>/skip/", views.label_skip, name="label-skip"),
    path("p/<slug:slug>/label/calibration/<int:question_id>/answer/", views.label_calibration_answer, name="label-calibration-answer"),
    path("p/<slug:slug>/lead/", views.lead_page, name="lead"),
    path("p/<slug:slug>/calibration/", views.calibration_page, name="calibration"),
    path("p/<slug:slug>/calibration/policy/", views.calibration_policy, name="calibration-policy"),
    path("p/<slug:slug>/calibration/alerts/<int:change_id>/ack/", views.calibration_acknowledge, name="calibration-ack"),
    path("p/<slug:slug>/calibration/<str:username>/override/", views.calibration_override, name="calibration-override"),
    path("p/<slug:slug>/calibration/<str:username>/recalibrate/", views.calibration_recalibrate, name="calibration-recalibrate"),
    path("p/<slug:slug>/anchors/", views.anchors_page, name="anchors"),
    path("p/<slug:slug>/anchors/import/", views.anchors_import_view, name="anchors-import"),
    path("p/<slug:slug>/anchors/set/", views.calibration_set_view, name="anchors-set"),
    path("p/<slug:slug>/anchors/new/", views.anchor_new, name="anchor-new"),
    path("p/<slug:slug>/anchors/<int:anchor_id>/", views.anchor_edit, name="anchor-edit"),
    path("p/<slug:slug>/lead/spec/", views.lead_spec, name="lead-spec"),
    path("p/<slug:slug>/lead/import/", views.lead_import, name="lead-import"),
    path("imports/<int:job_id>/", views.import_status, name="import-status"),
    path("p/<slug:slug>/export/", views.export_page, name="export"),
    path("p/<slug:slug>/analytics/", views.analytics_page, name="analytics"),
    path("p/<slug:slug>/analytics/refresh/", views.analytics_refresh, name="analytics-refresh"),
    path("p/<slug:slug>/analytics/progress/<int:snapshot_id>/", views.analytics_progress, name="analytics-progress"),
    path("p/<slug:slug>/analytics/policy/", views.analytics_policy, name="analytics-policy"),
    path("p/<slug:slug>/analytics/tables/<str:table>.csv", views.analytics_csv, name="analytics-csv"),
    path("p/<slug:slug>/analytics/annotators/<str:username>/", views.analytics_annotator, name="analytics-annotator"),
]
