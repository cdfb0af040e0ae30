from django.urls import path

from . import archive_views, comparison_views, custom_judge_views, judge_agreement_views, judge_views, run_views, views
from .monitoring import backfill_views, dashboard_views, registration_views

app_name = "evaluation"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("<int:pk>/download.<str:fmt>", views.dataset_download, name="dataset_download"),
    path("<int:pk>/delete/", views.dataset_delete, name="dataset_delete"),
    path("from-traces/", views.dataset_from_traces, name="from_traces"),
    path("from-session/<int:session_pk>/", views.save_session_as_dataset, name="save_session"),
    path("traces.jsonl", views.traces_download, name="traces_download"),
    path("scorers/", views.scorer_list, name="scorer_list"),
    path("runs/compare/", comparison_views.run_compare, name="run_compare"),
    path(
        "runs/compare/add-to-session/",
        comparison_views.run_compare_add_to_session,
        name="run_compare_add_to_session",
    ),
    path("runs/", run_views.run_list, name="run_list"),
    path("runs/start/", run_views.run_start, name="run_start"),
    path("runs/<int:pk>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:pk>/row/", run_views.run_row, name="run_row"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/add-to-session/", run_views.run_add_to_session, name="run_add_to_session"),
    path("runs/<int:pk>/traces.<str:fmt>", run_views.run_download, name="run_download"),
    path("judges/", judge_views.judge_list, name="judge_list"),
    path("judges/check/", judge_views.judge_check, name="judge_check"),
    path("judges/custom/", custom_judge_views.custom_judge_list, name="custom_judge_list"),
    path("judges/custom/new/", custom_judge_views.custom_judge_new, name="custom_judge_new"),
    path("judges/custom/<int:pk>/", custom_judge_views.custom_judge_edit, name="custom_judge_edit"),
    path("judges/agreement/", judge_agreement_views.judge_agreement, name="judge_agreement"),
    path("judges/agreement/run/", judge_agreement_views.judge_agreement_run, name="judge_agreement_run"),
    path("judges/agreement/example/", judge_agreement_views.judge_agreement_example, name="judge_agreement_example"),
    path("monitoring/", dashboard_views.monitoring_index, name="monitoring_index"),
    path("monitoring/<int:experiment_pk>/", dashboard_views.monitoring_dashboard, name="monitoring"),
    path(
        "monitoring/<int:experiment_pk>/send-failures/",
        dashboard_views.monitoring_send_failures,
        name="monitoring_send_failures",
    ),
    path("monitoring/archive/", archive_views.archive_list, name="archive_list"),
    path("monitoring/<int:experiment_pk>/archive/", archive_views.archive_settings, name="archive_settings"),
    path("monitoring/<int:experiment_pk>/backfill/", backfill_views.backfill_start, name="backfill_start"),
    path("monitoring/backfills/<str:job_id>/", backfill_views.backfill_detail, name="backfill_detail"),
    path("monitoring/backfills/<str:job_id>/cancel/", backfill_views.backfill_cancel, name="backfill_cancel"),
    path("monitoring/backfills/<str:job_id>/resume/", backfill_views.backfill_resume, name="backfill_resume"),
    path(
        "monitoring/<int:experiment_pk>/scorers/",
        registration_views.monitoring_scorers,
        name="monitoring_scorers",
    ),
    path(
        "monitoring/<int:experiment_pk>/scorers/<int:pk>/",
        registration_views.monitoring_scorer,
        name="monitoring_scorer",
    ),
    path(
        "monitoring/<int:experiment_pk>/scorers/<int:pk>/start/",
        registration_views.monitoring_scorer_start,
        name="monitoring_scorer_start",
    ),
    path(
        "monitoring/<int:experiment_pk>/scorers/<int:pk>/update/",
        registration_views.monitoring_scorer_update,
        name="monitoring_scorer_update",
    ),
    path(
        "monitoring/<int:experiment_pk>/scorers/<int:pk>/stop/",
        registration_views.monitoring_scorer_stop,
        name="monitoring_scorer_stop",
    ),
    path(
        "monitoring/<int:experiment_pk>/scorers/<int:pk>/delete/",
        registration_views.monitoring_scorer_delete,
        name="monitoring_scorer_delete",
    ),
]
