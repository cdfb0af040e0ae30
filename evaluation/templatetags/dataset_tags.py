"""``{% save_dataset_form session %}``: the save-as-dataset form, with the inclusion rule and today's counts.

A tag rather than view context so the session dashboard (labeling) needs nothing from evaluation
(dependencies run traces ← labeling ← evaluation). It costs one query.
"""

from __future__ import annotations

from typing import Any

from django import template

from labeling.models import LabelingSession

from ..exporters import INCLUSION_RULE, labeled_counts
from ..forms import SaveDatasetForm

register = template.Library()


@register.inclusion_tag("evaluation/_save_dataset_form.html", takes_context=True)
def save_dataset_form(context: template.Context, session: LabelingSession) -> dict[str, Any]:
    return {
        "session": session,
        "form": SaveDatasetForm(default_name=session.name),
        "counts": labeled_counts([session]),
        "rule": INCLUSION_RULE,
        "csrf_token": context.get("csrf_token"),
    }
