from django.contrib import admin

from .models import Assessment, Experiment, Span, Trace


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "mlflow_experiment_id", "created_at"]
    search_fields = ["name"]


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ["trace_id", "name", "experiment", "state", "request_time", "span_count"]
    list_filter = ["state", "experiment"]
    search_fields = ["trace_id", "name", "client_request_id"]
    raw_id_fields = ["experiment"]


@admin.register(Span)
class SpanAdmin(admin.ModelAdmin):
    list_display = ["span_id", "name", "span_type", "status_code", "trace"]
    raw_id_fields = ["trace"]
    search_fields = ["span_id", "name"]


@admin.register(Assessment)
class AssessmentAdmin(admin.ModelAdmin):
    list_display = ["assessment_id", "name", "kind", "source_type", "source_id", "valid", "trace"]
    list_filter = ["kind", "source_type", "valid"]
    raw_id_fields = ["trace"]
    search_fields = ["assessment_id", "name"]
