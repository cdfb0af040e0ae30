"""The per-experiment archive setting: archive traces older than N days to a Delta table under ``ARCHIVE_ROOT``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings

from .monitoring.archive import ArchiveError, check_target
from .monitoring.models import ArchivePolicy

MAX_DAYS = 36_500


def archive_root() -> Path:
    return Path(settings.ARCHIVE_ROOT).absolute()


class ArchivePolicyForm(forms.Form):
    older_than_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_DAYS,
        label="Archive traces older than (days)",
        help_text="Blank: never. 0: every trace, as soon as it is stored.",
    )
    path = forms.CharField(
        required=False,
        max_length=500,
        label="Delta table",
        help_text="A directory inside the archive root; relative paths are taken from it.",
    )
    delete_after = forms.BooleanField(
        required=False,
        label="Delete archived traces from the database",
        help_text="Each batch leaves the database only after its rows are committed to the table.",
    )

    @staticmethod
    def initial_of(policy: ArchivePolicy | None) -> dict[str, Any]:
        if policy is None:
            return {}
        root = archive_root()
        path = Path(policy.path)
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else policy.path
        return {"older_than_days": policy.older_than_days, "path": shown, "delete_after": policy.delete_after}

    def clean_path(self) -> str:
        raw = (self.cleaned_data.get("path") or "").strip()
        if not raw:
            return ""
        root = archive_root()
        target = Path(raw) if Path(raw).is_absolute() else root / raw
        resolved = Path(*[part for part in target.parts if part not in ("", ".")])
        if ".." in resolved.parts or not resolved.is_relative_to(root) or resolved == root:
            raise forms.ValidationError(f"Give a directory inside the archive root ({root}).")
        try:
            return check_target(str(resolved))
        except ArchiveError as exc:
            raise forms.ValidationError(str(exc).replace(str(resolved), "This path")) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("older_than_days") is not None and not cleaned.get("path") and "path" not in self.errors:
            self.add_error("path", "Give the Delta table to archive to.")
        return cleaned
