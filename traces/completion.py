"""What else happens when traces complete: their root span arrived over OTLP, or they were imported or predicted.

``ON_TRACES_COMPLETED`` names functions (dotted paths) called with the completed traces' pks inside
the transaction that completed them, so whatever they queue commits with the traces or not at all
(monitoring queues its sampled scorers this way). ``traces`` imports nothing of the apps that hook in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

Hook = Callable[[Sequence[int]], object]


@lru_cache(maxsize=8)
def _hooks(paths: tuple[str, ...]) -> tuple[Hook, ...]:
    return tuple(import_string(path) for path in paths)


def traces_completed(trace_pks: Sequence[int]) -> None:
    if not trace_pks:
        return
    for hook in _hooks(tuple(settings.ON_TRACES_COMPLETED)):
        hook(trace_pks)
