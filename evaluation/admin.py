from django.contrib import admin

from .models import DatasetRecord, EvaluationDataset


@admin.register(EvaluationDataset)
class EvaluationDatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "updated_at"]
    search_fields = ["name"]


@admin.register(DatasetRecord)
class DatasetRecordAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "source_type", "updated_at"]
    raw_id_fields = ["dataset"]
