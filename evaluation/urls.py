from django.urls import path

from . import judge_views, views

app_name = "evaluation"

urlpatterns = [
    path("", views.dataset_list, name="dataset_list"),
    path("<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("<int:pk>/download.<str:fmt>", views.dataset_download, name="dataset_download"),
    path("from-traces/", views.dataset_from_traces, name="from_traces"),
    path("from-session/<int:session_pk>/", views.save_session_as_dataset, name="save_session"),
    path("traces.jsonl", views.traces_download, name="traces_download"),
    path("scorers/", views.scorer_list, name="scorer_list"),
    path("judges/", judge_views.judge_list, name="judge_list"),
    path("judges/check/", judge_views.judge_check, name="judge_check"),
]
