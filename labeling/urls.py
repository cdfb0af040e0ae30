from django.urls import path

from .views import adjudication, manage, people, review, trace_adds

app_name = "labeling"

urlpatterns = [
    # Staff pages
    path("manage/schemas/", manage.schema_list, name="schema_list"),
    path("manage/schemas/new/", manage.schema_create, name="schema_create"),
    path("manage/schemas/<int:pk>/", manage.schema_edit, name="schema_edit"),
    path("manage/sessions/", manage.session_list, name="session_list"),
    path("manage/sessions/new/", manage.session_create, name="session_create"),
    path("manage/sessions/<int:pk>/", manage.session_dashboard, name="session_dashboard"),
    path("manage/sessions/<int:pk>/edit/", manage.session_edit, name="session_edit"),
    path("manage/sessions/<int:pk>/add-traces/", manage.session_add_traces, name="session_add_traces"),
    path("manage/sessions/<int:pk>/add-traces/jobs/<int:job_pk>/", trace_adds.trace_add_job, name="trace_add_job"),
    path(
        "manage/sessions/<int:pk>/add-traces/jobs/<int:job_pk>/retry/",
        trace_adds.trace_add_job_retry,
        name="trace_add_job_retry",
    ),
    path("manage/sessions/<int:pk>/complete/", manage.session_complete, name="session_complete"),
    path("manage/sessions/<int:pk>/assign/", manage.session_assign, name="session_assign"),
    path("manage/sessions/<int:pk>/assign-by-hand/", manage.session_assign_by_hand, name="session_assign_by_hand"),
    path("manage/sessions/add-from-filters/", manage.add_from_filters, name="add_from_filters"),
    path("manage/sessions/<int:pk>/disagreements/", adjudication.adjudication_queue, name="adjudication_queue"),
    path(
        "manage/sessions/<int:pk>/disagreements/<int:item_pk>/",
        adjudication.adjudicate_item,
        name="adjudicate_item",
    ),
    path("manage/people/", people.user_list, name="user_list"),
    path("manage/people/<int:pk>/role/", people.user_role, name="user_role"),
    # Reviewers
    path("review/", review.my_sessions, name="my_sessions"),
    path("review/<int:session_pk>/", review.review_start, name="review_start"),
    path("review/<int:session_pk>/items/<int:item_pk>/", review.review_item, name="review_item"),
    path("review/<int:session_pk>/items/<int:item_pk>/submit/", review.submit_item, name="submit_item"),
    path("review/<int:session_pk>/items/<int:item_pk>/skip/", review.skip, name="skip_item"),
    path("review/<int:session_pk>/items/<int:item_pk>/flag/", review.flag, name="flag_item"),
    path("review/<int:session_pk>/items/<int:item_pk>/heartbeat/", review.heartbeat, name="heartbeat"),
    path("review/<int:session_pk>/mine/", review.my_completed, name="my_completed"),
]
