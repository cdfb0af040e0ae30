"""Writes of custom judges: create, edit (a new version when the definition changes), add a few-shot example."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from traces.references import acting_user

from .judges.custom import Definition, Example, check
from .models import CustomJudge, CustomJudgeVersion


def save_custom_judge(
    *, definition: Definition, judge: CustomJudge | None = None, changed_by: AbstractBaseUser | None = None
) -> CustomJudge:
    """Create a judge, or edit one: a changed definition keeps the previous one as a version. Raises ValidationError."""
    check(definition, pk=judge.pk if judge is not None else None)
    with transaction.atomic():
        if judge is None:
            created = CustomJudge(**definition.fields(), created_by=acting_user(changed_by))
            created.save()
            return created
        previous = CustomJudge.objects.select_for_update().get(pk=judge.pk)
        fields = definition.fields()
        if previous.snapshot() == fields:
            return previous
        CustomJudgeVersion.objects.create(
            judge=previous, version=previous.version, snapshot=previous.snapshot(), changed_by=acting_user(changed_by)
        )
        for name, value in fields.items():
            setattr(previous, name, value)
        previous.version += 1
        previous.save()
        return previous


def add_example(*, judge: CustomJudge, example: Example, changed_by: AbstractBaseUser | None = None) -> CustomJudge:
    """The judge's next version, with one more few-shot example. Raises ValidationError (e.g. too many examples)."""
    current = Definition.of(judge)
    if example in current.examples:
        raise ValidationError({"examples": "This example is already one of the judge's examples."})
    return save_custom_judge(definition=current.with_example(example), judge=judge, changed_by=changed_by)
