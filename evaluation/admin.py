from django.contrib import admin

from .models import DatasetRecord, EvaluationDataset, EvaluationRun


@admin.register(EvaluationDataset)
class EvaluationDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "updated_at"]
    search_fields = ["name"]


@admin.register(DatasetRecord)
class DatasetRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "source_type", "updated_at"]
    raw_id_fields = ["dataset"]


@admin.register(EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    list_display = ["name", "source_kind", "status", "progress_done", "progress_total", "created_at"]
    list_filter = ["status", "source_kind"]
    search_fields = ["name", "run_id"]
    raw_id_fields = ["dataset", "session", "experiment", "started_by"]
