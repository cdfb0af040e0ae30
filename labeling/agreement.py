"""Inter-reviewer agreement per question, computed on demand with well-kept statistics libraries.

* percent agreement: the share of agreeing reviewer pairs per item, averaged over items;
* Cohen's κ (scikit-learn) when exactly two reviewers rated common items;
* Fleiss' κ (statsmodels) for categorical and pass/fail questions, over the items that have
  the most common number of ratings (Fleiss needs the same number of raters per item);
* Krippendorff's α (krippendorff): nominal for categorical and pass/fail, interval for numbers;
* each reviewer's agreement with the consensus (the majority answer of an item; ties have none);
* judge versus humans, where the traces carry LLM_JUDGE feedback named like the question.

Pick-several answers count as one category per set of choices. Free-text answers only get
percent agreement on the exact (trimmed, case-folded) text.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from traces.models import Assessment, AssessmentSource

from .models import InputType, LabelingSession, LabelSchema

Ratings = dict[Any, dict[str, Any]]  # item → reviewer → canonical value

NOMINAL = {InputType.CATEGORICAL, InputType.CATEGORICAL_LIST, InputType.PASS_FAIL}
TEXT = {InputType.TEXT, InputType.TEXT_LIST}
PASS_WORDS = {"pass", "yes", "true", "correct", "1"}
FAIL_WORDS = {"fail", "no", "false", "incorrect", "0"}


@dataclass
class QuestionAgreement:
    question: str
    title: str
    kind: str
    n_items: int = 0  # items with at least two ratings
    n_reviewers: int = 0
    percent_agreement: float | None = None
    cohen_kappa: float | None = None
    fleiss_kappa: float | None = None
    krippendorff_alpha: float | None = None
    reviewer_vs_consensus: dict[str, float] = field(default_factory=dict)
    judge_agreement: float | None = None
    judge_kappa: float | None = None
    judge_items: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        return " ".join(self.notes)


def canonical(kind: str, value: Any) -> Any:
    """A comparable, hashable form of an answer; ``None`` when it cannot be read for this kind."""
    if value is None:
        return None
    if kind == InputType.PASS_FAIL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        return True if word in PASS_WORDS else False if word in FAIL_WORDS else None
    if kind == InputType.NUMERIC:
        if isinstance(value, bool):
            return float(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    if kind == InputType.CATEGORICAL_LIST:
        return tuple(sorted(map(str, value))) if isinstance(value, list) else (str(value),)
    if kind in TEXT:
        text = "\n".join(map(str, value)) if isinstance(value, list) else str(value)
        return text.strip().casefold()
    return str(value)


def _clean(number: float | None) -> float | None:
    if number is None or not math.isfinite(float(number)):
        return None
    return round(float(number), 4)


def percent_agreement(ratings: Ratings) -> tuple[float | None, int]:
    shares = []
    for by_rater in ratings.values():
        values = list(by_rater.values())
        if len(values) < 2:
            continue
        pairs = list(combinations(values, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return (_clean(sum(shares) / len(shares)) if shares else None), len(shares)


def consensus(ratings: Ratings) -> dict[Any, Any]:
    """The majority answer per item (items with a tie, or a single rating, have none)."""
    result = {}
    for item, by_rater in ratings.items():
        if len(by_rater) < 2:
            continue
        (top, count), *rest = [*Counter(by_rater.values()).most_common(), (None, 0)]
        if count > rest[0][1]:
            result[item] = top
    return result


def reviewer_vs_consensus(ratings: Ratings) -> dict[str, float]:
    agreed: dict[str, list[bool]] = defaultdict(list)
    majority = consensus(ratings)
    for item, value in majority.items():
        for rater, answer in ratings[item].items():
            agreed[rater].append(answer == value)
    return {rater: round(sum(hits) / len(hits), 4) for rater, hits in sorted(agreed.items())}


def cohen(first: list[Any], second: list[Any]) -> float | None:
    if len(first) < 2 or len(set(first) | set(second)) < 2:
        return None
    codes = {v: i for i, v in enumerate(sorted(set(first) | set(second), key=repr))}
    return _clean(cohen_kappa_score([codes[v] for v in first], [codes[v] for v in second]))


def cohen_for_two_reviewers(ratings: Ratings) -> tuple[float | None, str]:
    raters = sorted({r for by_rater in ratings.values() for r in by_rater})
    if len(raters) != 2:
        return None, "" if len(raters) < 2 else f"Cohen's κ needs exactly two reviewers ({len(raters)} answered)."
    a, b = raters
    common = [(by[a], by[b]) for by in ratings.values() if a in by and b in by]
    kappa = cohen([x for x, _ in common], [y for _, y in common])
    return kappa, "" if kappa is not None else "Cohen's κ is undefined: too few items or only one answer given."


def fleiss(ratings: Ratings) -> tuple[float | None, str]:
    counts = Counter(len(by) for by in ratings.values() if len(by) >= 2)
    if not counts:
        return None, ""
    size = counts.most_common(1)[0][0]
    rows = [list(by.values()) for by in ratings.values() if len(by) == size]
    codes = {v: i for i, v in enumerate(sorted({v for row in rows for v in row}, key=repr))}
    if len(rows) < 2 or len(codes) < 2:
        return None, "Fleiss' κ is undefined: too few items or only one answer given."
    table, _ = aggregate_raters(np.array([[codes[v] for v in row] for row in rows]), n_cat=len(codes))
    kappa = _clean(fleiss_kappa(table, method="fleiss"))
    note = f"Fleiss' κ uses the {len(rows)} items with {size} answers." if len(rows) < len(ratings) else ""
    return kappa, note


def krippendorff_alpha(ratings: Ratings, level: str) -> tuple[float | None, str]:
    raters = sorted({r for by in ratings.values() for r in by})
    items = list(ratings)
    values = {v for by in ratings.values() for v in by.values()}
    if len(raters) < 2 or len(values) < 2 or not items:
        return None, "Krippendorff's α is undefined: one reviewer or only one answer given." if items else ""
    if level == "interval":
        code = float
    else:
        codes = {v: i for i, v in enumerate(sorted(values, key=repr))}
        code = codes.__getitem__
    data = np.full((len(raters), len(items)), np.nan)
    for column, item in enumerate(items):
        for row, rater in enumerate(raters):
            if rater in ratings[item]:
                data[row, column] = code(ratings[item][rater])
    try:
        return _clean(krippendorff.alpha(reliability_data=data, level_of_measurement=level)), ""
    except (ValueError, ZeroDivisionError) as exc:
        return None, f"Krippendorff's α is undefined ({exc})."


def question_agreement(schema: LabelSchema, ratings: Ratings, judge: dict[Any, Any] | None = None) -> QuestionAgreement:
    kind = schema.input_type
    result = QuestionAgreement(question=schema.name, title=schema.title, kind=kind)
    result.n_reviewers = len({r for by in ratings.values() for r in by})
    result.percent_agreement, result.n_items = percent_agreement(ratings)
    if result.n_items == 0:
        result.notes.append("No item has answers from two reviewers yet.")
        return result
    result.reviewer_vs_consensus = reviewer_vs_consensus(ratings)
    if kind in TEXT:
        result.notes.append("Free text: exact-match agreement only.")
    else:
        result.cohen_kappa, note = cohen_for_two_reviewers(ratings)
        result.notes.append(note)
        if kind in NOMINAL:
            result.fleiss_kappa, note = fleiss(ratings)
            result.notes.append(note)
        level = "interval" if kind == InputType.NUMERIC else "nominal"
        result.krippendorff_alpha, note = krippendorff_alpha(ratings, level)
        result.notes.append(note)
    if judge:
        majority = consensus(ratings)
        pairs = [(judge[item], value) for item, value in majority.items() if item in judge]
        result.judge_items = len(pairs)
        if pairs:
            result.judge_agreement = _clean(sum(a == b for a, b in pairs) / len(pairs))
            result.judge_kappa = cohen([a for a, _ in pairs], [b for _, b in pairs])
    result.notes = [n for n in result.notes if n]
    return result


def load_ratings(session: LabelingSession) -> tuple[dict[str, Ratings], dict[str, dict[Any, Any]]]:
    """Reviewers' current answers and judge verdicts per question, in one query."""
    kinds = {s.name: s.input_type for s in session.ordered_schemas()}
    humans: dict[str, Ratings] = {name: defaultdict(dict) for name in kinds}
    judges: dict[str, dict[Any, Any]] = {name: {} for name in kinds}
    rows = (
        Assessment.objects.filter(trace__review_item__session=session, valid=True, name__in=list(kinds))
        .filter(source_type__in=[AssessmentSource.HUMAN, AssessmentSource.LLM_JUDGE])
        .values_list("trace__review_item__id", "name", "source_type", "source_id", "value", "metadata")
        .order_by("create_time", "id")
    )
    for item, name, source, who, value, metadata in rows:
        answer = canonical(kinds[name], value)
        if answer is None:
            continue
        if source == AssessmentSource.LLM_JUDGE:
            judges[name][item] = answer
        elif not (metadata or {}).get("copied_from") and not (metadata or {}).get("adjudicated"):
            humans[name][item][who] = answer
    return {name: dict(r) for name, r in humans.items()}, judges


def session_agreement(session: LabelingSession) -> list[QuestionAgreement]:
    humans, judges = load_ratings(session)
    return [question_agreement(s, humans[s.name], judges[s.name]) for s in session.ordered_schemas()]


CSV_COLUMNS = [
    "question",
    "kind",
    "items",
    "reviewers",
    "percent_agreement",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "reviewer_vs_consensus",
    "judge_items",
    "judge_agreement",
    "judge_kappa",
    "note",
]


def agreement_rows(results: list[QuestionAgreement]) -> list[dict[str, Any]]:
    """One CSV row per question; reviewer-vs-consensus as ``alice=0.9;bob=0.75``."""
    return [
        {
            "question": r.question,
            "kind": r.kind,
            "items": r.n_items,
            "reviewers": r.n_reviewers,
            "percent_agreement": r.percent_agreement,
            "cohen_kappa": r.cohen_kappa,
            "fleiss_kappa": r.fleiss_kappa,
            "krippendorff_alpha": r.krippendorff_alpha,
            "reviewer_vs_consensus": ";".join(f"{k}={v}" for k, v in r.reviewer_vs_consensus.items()),
            "judge_items": r.judge_items,
            "judge_agreement": r.judge_agreement,
            "judge_kappa": r.judge_kappa,
            "note": r.note,
        }
        for r in results
    ]
