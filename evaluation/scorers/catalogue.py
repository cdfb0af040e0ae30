"""Which scorers exist: every ``mlflow.genai`` ``Scorer`` (``@scorer`` functions included) in ``SCORER_MODULES``,
MLflow's built-in LLM judges (``evaluation.judges.builtin``) and the judges defined in the app
(``evaluation.judges.custom``), unavailable while no judge endpoint is configured.

A scorer is known by its name, with its module, the arguments it takes (of ``inputs``, ``outputs``,
``expectations``, ``trace``), its aggregations, its docstring and a digest of its definition, so a
changed scorer shows as a new version. MLflow is imported here, lazily: only evaluation code paths
and workers load this module's functions.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from django.conf import settings

ARGUMENTS = ("inputs", "outputs", "expectations", "trace")


class ScorerError(Exception):
    """A scorer cannot be used: its module does not import, or no scorer has that name."""


class ScorerModuleError(ScorerError):
    """A module in ``SCORER_MODULES`` failed to import; ``reason`` is one line."""

    def __init__(self, module: str, reason: str) -> None:
        self.module = module
        self.reason = reason
        super().__init__(f"scorer module {module!r} failed to import: {reason}")


class UnavailableScorerError(ScorerError):
    """A judge of the catalogue that cannot run now (no endpoint configured, no guidelines)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"judge {name!r} is not available: {reason}")


class UnknownScorerError(ScorerError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        shown = ", ".join(known) if known else "none are configured (SCORER_MODULES)"
        super().__init__(f"unknown scorer {name!r}; known scorers: {shown}")


@dataclass(frozen=True)
class ScorerInfo:
    """One scorer of the catalogue and what a page or a run needs to know about it."""

    name: str
    module: str
    arguments: tuple[str, ...]
    aggregations: tuple[str, ...]
    docstring: str
    digest: str
    timeout: float | None = None
    scorer: Any = field(repr=False, compare=False, default=None)
    kind: str = "code"  # or "judge": an LLM judge, its Feedback's source is LLM_JUDGE with the model as source id
    reads: str = ""  # for a judge: what it reads, in words
    unavailable: str = ""  # why it cannot run now ("" when it can)

    @property
    def is_judge(self) -> bool:
        return self.kind == "judge"

    @property
    def available(self) -> bool:
        return not self.unavailable

    @property
    def feedback_name(self) -> str:
        """Its Feedback name when it fails: MLflow names a judge's Feedback ``correctness``, not ``Correctness``."""
        return getattr(self.scorer, "name", None) or (_snake(self.name) if self.is_judge else self.name)

    @property
    def version(self) -> dict[str, str]:
        """What a run records of it: the name and the digest of its definition."""
        return {"name": self.name, "digest": self.digest}

    @property
    def takes_trace(self) -> bool:
        return "trace" in self.arguments


@dataclass(frozen=True)
class Catalogue:
    scorers: dict[str, ScorerInfo]
    errors: tuple[ScorerModuleError, ...] = ()
    judges: dict[str, ScorerInfo] = field(default_factory=dict)

    def get(self, name: str) -> ScorerInfo:
        """A module's scorer, else a built-in judge (by MLflow's class name or its Feedback name, as MLflow's CLI)."""
        if name in self.scorers:
            return self.scorers[name]
        judge = self.judges.get(name) or next((j for j in self.judges.values() if _snake(j.name) == name), None)
        if judge is not None:
            if not judge.available:
                raise UnavailableScorerError(judge.name, judge.unavailable)
            return judge
        for error in self.errors:
            raise error
        raise UnknownScorerError(name, sorted(self.scorers) + [j.name for j in self.judges.values() if j.available])

    def pick(self, names: list[str]) -> list[ScorerInfo]:
        return [self.get(name) for name in dict.fromkeys(names)]


def _snake(name: str) -> str:
    """MLflow's scorer name of a built-in class name: ``RelevanceToQuery`` → ``relevance_to_query``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"[:300]


def import_scorer_module(dotted: str) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except BaseException as error:  # a module's import may do anything, SystemExit included
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ScorerModuleError(dotted, _one_line(error)) from error


def _function_of(scorer: Any) -> Any:
    return getattr(scorer, "_original_func", None) or type(scorer).__call__


def _arguments(scorer: Any) -> tuple[str, ...]:
    parameters = inspect.signature(scorer.__call__).parameters
    return tuple(name for name in ARGUMENTS if name in parameters)


def _docstring(scorer: Any) -> str:
    function = getattr(scorer, "_original_func", None)
    text = (function.__doc__ if function is not None else None) or getattr(scorer, "description", None)
    if not text and type(scorer).__doc__ and not type(scorer).__module__.startswith("mlflow."):
        text = type(scorer).__doc__
    return inspect.cleandoc(text or "")


def _timeout(scorer: Any) -> float | None:
    """The scorer's own ``@scorer(timeout=…)`` in seconds, when it set one (``SCORER_TIMEOUT_SECONDS`` caps it)."""
    timeout = getattr(scorer, "timeout", None)
    return float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None


def scorer_digest(scorer: Any) -> str:
    """MLflow's definition digest (``sha256:…``), or a sha256 of the scorer's source code when it has none."""
    from mlflow.genai.scorers.scorer_utils import get_scorer_definition_digest

    digest = get_scorer_definition_digest(scorer)
    if digest:
        return digest
    try:
        source = inspect.getsource(_function_of(scorer))
    except (OSError, TypeError):
        source = f"{type(scorer).__module__}.{type(scorer).__qualname__}:{scorer.name}"
    return "sha256:" + hashlib.sha256(source.encode()).hexdigest()


def describe(scorer: Any, module: str) -> ScorerInfo:
    """A module's scorer; an MLflow ``Judge`` there (``make_judge``, a built-in judge class) runs as a judge,
    under the judge endpoint's deadline, retries and concurrency."""
    from mlflow.genai.judges.base import Judge

    aggs = scorer.aggregations or ()
    return ScorerInfo(
        kind="judge" if isinstance(scorer, Judge) else "code",
        name=scorer.name,
        module=module,
        arguments=_arguments(scorer),
        aggregations=tuple(a if isinstance(a, str) else getattr(a, "__name__", "custom") for a in aggs),
        docstring=_docstring(scorer),
        digest=scorer_digest(scorer),
        timeout=_timeout(scorer),
        scorer=scorer,
    )


def scorers_in(module: ModuleType) -> list[Any]:
    """The ``Scorer`` instances a module defines at its top level (``@scorer`` functions are such instances)."""
    from mlflow.genai.scorers import Scorer

    return [value for name, value in vars(module).items() if not name.startswith("_") and isinstance(value, Scorer)]


def load_catalogue(modules: list[str] | None = None) -> Catalogue:
    """Every scorer of these modules (default ``SCORER_MODULES``) and the built-in judges; modules that fail to import
    are listed as errors.

    A name defined twice keeps the first module's scorer, in the order of ``SCORER_MODULES``; a module's scorer
    named as a built-in judge hides the judge.
    """
    from evaluation.judges.builtin import builtin_judges
    from evaluation.judges.custom import custom_judges

    found: dict[str, ScorerInfo] = {}
    errors: list[ScorerModuleError] = []
    for dotted in settings.SCORER_MODULES if modules is None else modules:
        try:
            module = import_scorer_module(dotted)
        except ScorerModuleError as error:
            errors.append(error)
            continue
        for scorer in scorers_in(module):
            found.setdefault(scorer.name, describe(scorer, dotted))
    judges = {name: info for name, info in builtin_judges().items() if name not in found}
    judges.update({name: info for name, info in custom_judges().items() if name not in found and name not in judges})
    return Catalogue(scorers=found, errors=tuple(errors), judges=judges)
