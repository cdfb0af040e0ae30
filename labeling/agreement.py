"""Inter-reviewer agreement per question, computed on demand with well-kept statistics libraries.

For each question of a session:

* percent agreement: the share of agreeing reviewer pairs on an item, averaged over the items
  that have at least two answers;
* Cohen's κ (statsmodels) when exactly two reviewers answered, over the items both answered;
* Fleiss' κ (statsmodels) for categorical and pass/fail questions. Fleiss needs the same number
  of answers on every item, so it uses the items having the most common number of answers;
* Krippendorff's α (krippendorff): nominal for categorical and pass/fail, interval for numbers;
* each reviewer's agreement with the consensus: the consensus of an item is its majority answer
  (the reviewer's own vote included), counted on items with two or more answers; an item without
  a majority (a tie: with two reviewers, every disagreement) counts against everyone on it;
* judge versus humans, where the item traces carry LLM_JUDGE feedback named like the question:
  the share of items where the judge gives the human consensus (a single human answer counts
  as the consensus, so one-reviewer sessions get a judge comparison too), Cohen's κ between
  the judge and that consensus, and for numbers the mean absolute difference to the humans' mean.

How answers are compared (see ``canonical``): pass/fail as booleans; numbers as floats (exact
equality for percent agreement and Cohen's κ, distances only in Krippendorff's interval α);
categorical as text. A pick-several (categorical list) answer is one category per *set* of
choices, so ``[a, b]`` and ``[b, a]`` agree and ``[a]`` and ``[a, b]`` disagree. Free text and
text lists are compared exactly after trimming and case-folding, and get percent agreement and
consensus only: κ and α would treat every distinct wording as its own category.

Statistics are rounded to 4 decimals. A statistic that is undefined (one reviewer, no shared
items, everyone gave the same answer so chance agreement is 100%) is ``None``, never NaN, and
the result's ``note`` says why.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
import orjson
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from traces.models import Assessment, AssessmentSource

from .copies import on_session_copies
from .models import ADJUDICATION_KEY, COPIED_KEY, InputType, LabelingSession, LabelSchema

Ratings = dict[Any, dict[str, Any]]  # item id → reviewer username → canonical answer
JudgeValues = dict[Any, Any]  # item id → the judge's canonical answer

NOMINAL = {InputType.CATEGORICAL, InputType.CATEGORICAL_LIST, InputType.PASS_FAIL}
TEXT = {InputType.TEXT, InputType.TEXT_LIST}
PASS_WORDS = {"pass", "yes", "true", "correct", "1"}
FAIL_WORDS = {"fail", "no", "false", "incorrect", "0"}


@dataclass
class QuestionAgreement:
    """One question's agreement; every statistic is a float in [-1, 1] (or [0, 1]) or ``None``."""

    question: str
    kind: str
    title: str = ""
    n_items: int = 0  # items with answers from at least two reviewers
    n_reviewers: int = 0  # reviewers who answered at least one item
    percent_agreement: float | None = None
    cohen_kappa: float | None = None
    fleiss_kappa: float | None = None
    krippendorff_alpha: float | None = None
    reviewer_vs_consensus: dict[str, float] = field(default_factory=dict)  # username → share, sorted by name
    judge_items: int = 0  # items with both a judge answer and a human consensus
    judge_agreement: float | None = None
    judge_kappa: float | None = None
    judge_mean_abs_diff: float | None = None  # numeric questions only
    notes: list[str] = field(default_factory=list)

    @property
    def note(self) -> str:
        return " ".join(self.notes)


# ---------------------------------------------------------------- values


def canonical(kind: str, value: Any) -> Any:
    """A comparable, hashable form of an answer; ``None`` when it cannot be read for this kind."""
    if value is None:
        return None
    if kind == InputType.PASS_FAIL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        word = str(value).strip().lower()
        return True if word in PASS_WORDS else False if word in FAIL_WORDS else None
    if kind == InputType.NUMERIC:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    if kind == InputType.CATEGORICAL_LIST:
        return tuple(sorted({str(v) for v in value})) if isinstance(value, list) else (str(value),)
    if kind in TEXT:
        parts = value if isinstance(value, list) else [value]
        return "\n".join(str(part).strip() for part in parts).strip().casefold()
    return str(value)


def _clean(number: Any) -> float | None:
    if number is None:
        return None
    number = float(number)
    return round(number, 4) if math.isfinite(number) else None


def _codes(values: Any) -> dict[Any, int]:
    """Integer codes for the distinct answers, in a stable order."""
    return {value: code for code, value in enumerate(sorted(set(values), key=repr))}


def paired(ratings: Ratings) -> Ratings:
    """The items answered by at least two reviewers (the only ones that say anything about agreement)."""
    return {item: by_rater for item, by_rater in ratings.items() if len(by_rater) >= 2}


def reviewers(ratings: Ratings) -> list[str]:
    return sorted({rater for by_rater in ratings.values() for rater in by_rater})


# ---------------------------------------------------------------- statistics


def percent_agreement(ratings: Ratings) -> tuple[float | None, int]:
    """Agreeing pairs / all pairs per item, averaged over items with two or more answers; and that item count."""
    shares = []
    for by_rater in paired(ratings).values():
        pairs = list(combinations(by_rater.values(), 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return (_clean(sum(shares) / len(shares)) if shares else None), len(shares)


def consensus(ratings: Ratings, min_ratings: int = 2) -> dict[Any, Any]:
    """The majority answer per item with at least ``min_ratings`` answers; a tie has none."""
    result = {}
    for item, by_rater in ratings.items():
        if len(by_rater) < min_ratings:
            continue
        (top, count), *rest = [*Counter(by_rater.values()).most_common(2), (None, 0)]
        if count > rest[0][1]:
            result[item] = top
    return result


def reviewer_vs_consensus(ratings: Ratings, majority: dict[Any, Any] | None = None) -> dict[str, float]:
    """Per reviewer: the share of their answers that match the item's majority, over items with two or more answers.

    An item without a majority (a tie) counts against everyone who answered it: nobody "agreed with
    the majority" there. With two reviewers every disagreement is a tie, so each reviewer's share
    equals the percent agreement; the figure tells reviewers apart only from three answers per item.
    ``majority`` is ``consensus(ratings, ...)`` when the caller has it already.
    """
    reference = consensus(ratings) if majority is None else majority
    agreed: dict[str, list[bool]] = defaultdict(list)
    for item, by_rater in paired(ratings).items():
        value = reference.get(item, _NO_MAJORITY)
        for rater, answer in by_rater.items():
            agreed[rater].append(value is not _NO_MAJORITY and answer == value)
    return {rater: round(sum(hits) / len(hits), 4) for rater, hits in sorted(agreed.items())}


_NO_MAJORITY = object()


def cohen(first: Sequence[Any], second: Sequence[Any]) -> float | None:
    """Cohen's κ between two aligned answer lists; ``None`` below two items or with a single category."""
    codes = _codes([*first, *second])
    if len(first) < 2 or len(codes) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        table = np.zeros((len(codes), len(codes)))
        np.add.at(table, ([codes[v] for v in first], [codes[v] for v in second]), 1)
        return _clean(cohens_kappa(table).kappa)


def cohen_for_two_reviewers(ratings: Ratings) -> tuple[float | None, str]:
    raters = reviewers(ratings)
    if len(raters) != 2:
        return None, f"Cohen's κ needs exactly two reviewers ({len(raters)} answered)." if len(raters) > 2 else ""
    a, b = raters
    common = [(by[a], by[b]) for by in ratings.values() if a in by and b in by]
    kappa = cohen([x for x, _ in common], [y for _, y in common])
    return kappa, "" if kappa is not None else "Cohen's κ is undefined: fewer than two shared items or one answer."


def fleiss(ratings: Ratings) -> tuple[float | None, str]:
    """Fleiss' κ over the items having the most common number of answers (Fleiss needs it constant)."""
    items = paired(ratings)
    if not items:
        return None, ""
    counts = Counter(len(by) for by in items.values())
    size = max(counts, key=lambda n: (counts[n], n))  # the modal count; on a tie, the larger one
    rows = [list(by.values()) for by in items.values() if len(by) == size]
    codes = _codes(v for row in rows for v in row)
    if len(rows) < 2 or len(codes) < 2:
        return None, "Fleiss' κ is undefined: fewer than two items with the same number of answers, or one answer."
    table, _ = aggregate_raters(np.array([[codes[v] for v in row] for row in rows]), n_cat=len(codes))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = _clean(fleiss_kappa(table, method="fleiss"))
    if len(rows) < len(items):
        return kappa, f"Fleiss' κ uses the {len(rows)} of {len(items)} items with {size} answers."
    return kappa, ""


def krippendorff_alpha(ratings: Ratings, level: str) -> tuple[float | None, str]:
    """Krippendorff's α (``level`` "nominal" or "interval") on a reviewers × items matrix, NaN = no answer."""
    items = paired(ratings)  # units answered once are unpairable: α ignores them anyway
    raters = reviewers(items)
    values = {v for by in items.values() for v in by.values()}
    if not items:
        return None, ""
    if len(values) < 2:
        return None, "Krippendorff's α is undefined: one answer only."
    code = float if level == "interval" else _codes(values).__getitem__
    row_of = {rater: row for row, rater in enumerate(raters)}
    data = np.full((len(raters), len(items)), np.nan)
    for column, by_rater in enumerate(items.values()):
        for rater, value in by_rater.items():
            data[row_of[rater], column] = code(value)
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _clean(krippendorff.alpha(reliability_data=data, level_of_measurement=level)), ""
    except (ValueError, ZeroDivisionError) as exc:
        return None, f"Krippendorff's α is undefined ({exc})."


def judge_vs_human(
    ratings: Ratings, judge: JudgeValues, kind: str, majority: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """The judge against the human consensus of each item (a lone human answer is that item's consensus).

    Returns the ``QuestionAgreement`` fields it fills: judge_items, judge_agreement, judge_kappa
    (nominal kinds), judge_mean_abs_diff (numeric: |judge − mean of the humans| averaged over items).
    """
    reference = consensus(ratings, min_ratings=1) if majority is None else majority
    pairs = [(judge[item], value) for item, value in reference.items() if item in judge]
    result: dict[str, Any] = {"judge_items": len(pairs)}
    if pairs:
        result["judge_agreement"] = _clean(sum(a == b for a, b in pairs) / len(pairs))
        if kind in NOMINAL:
            result["judge_kappa"] = cohen([a for a, _ in pairs], [b for _, b in pairs])
    if kind == InputType.NUMERIC:
        gaps = [abs(value - np.mean(list(ratings[item].values()))) for item, value in judge.items() if item in ratings]
        result["judge_mean_abs_diff"] = _clean(np.mean(gaps)) if gaps else None
    return result


def question_agreement(
    ratings: Ratings, kind: str, *, judge: JudgeValues | None = None, question: str = "", title: str = ""
) -> QuestionAgreement:
    """Every statistic for one question from plain data; never raises on thin data, never returns NaN."""
    result = QuestionAgreement(question=question, kind=kind, title=title)
    result.n_reviewers = len(reviewers(ratings))
    result.percent_agreement, result.n_items = percent_agreement(ratings)
    majority = consensus(ratings, min_ratings=1)
    if judge:
        for name, value in judge_vs_human(ratings, judge, kind, majority).items():
            setattr(result, name, value)
    if result.n_items == 0:
        if not ratings:
            result.notes.append("No answers yet.")
        elif result.n_reviewers == 1:
            result.notes.append("Only one reviewer has answered; agreement needs two.")
        else:
            result.notes.append("No item has answers from two reviewers yet.")
        return result
    result.reviewer_vs_consensus = reviewer_vs_consensus(ratings, majority)
    if kind in TEXT:
        result.notes.append("Free text: exact-match agreement only (trimmed, case-folded).")
        return result
    if len({v for by in paired(ratings).values() for v in by.values()}) < 2:
        result.notes.append("Everyone gave the same answer, so κ and α are undefined (chance agreement is 100%).")
        return result
    result.cohen_kappa, cohen_note = cohen_for_two_reviewers(ratings)
    fleiss_note = ""
    if kind in NOMINAL:
        result.fleiss_kappa, fleiss_note = fleiss(ratings)
    level = "interval" if kind == InputType.NUMERIC else "nominal"
    result.krippendorff_alpha, alpha_note = krippendorff_alpha(ratings, level)
    result.notes.extend(note for note in (cohen_note, fleiss_note, alpha_note) if note)
    return result


# ---------------------------------------------------------------- the database side


def load_ratings(
    session: LabelingSession, schemas: Sequence[LabelSchema] | None = None
) -> tuple[dict[str, Ratings], dict[str, JudgeValues]]:
    """Reviewers' current answers and judge answers per question name, in one query over all assessments.

    Humans: valid HUMAN assessments given in the session (not those copied in with the traces, nor
    a lead's adjudication). Judge: valid LLM_JUDGE assessments on the item traces named like the
    question (copied from the source trace or added later; the latest wins). Answers that cannot
    be read for the question's kind are left out. Pass ``schemas`` (``session.ordered_schemas()``)
    to save the query that fetches them.
    """
    kinds = {s.name: s.input_type for s in (session.ordered_schemas() if schemas is None else schemas)}
    humans: dict[str, Ratings] = {name: defaultdict(dict) for name in kinds}
    judges: dict[str, JudgeValues] = {name: {} for name in kinds}
    own_answers = (
        Q(source_type=AssessmentSource.HUMAN)
        & ~Q(metadata__has_key=COPIED_KEY)
        & ~Q(metadata__has_key=ADJUDICATION_KEY)
    )
    rows = (
        Assessment.objects.filter(on_session_copies(session), valid=True, name__in=list(kinds))
        .filter(own_answers | Q(source_type=AssessmentSource.LLM_JUDGE))
        .annotate(value_json=Cast("value", TextField()))  # decoded here with orjson: thousands of rows
        .values_list("trace_id", "name", "source_type", "source_id", "value_json")
        .order_by("create_time", "id")
    )
    for item, name, source, who, value_json in rows:
        answer = canonical(kinds[name], None if value_json is None else orjson.loads(value_json))
        if answer is None:
            continue
        if source == AssessmentSource.LLM_JUDGE:
            judges[name][item] = answer
        else:
            humans[name][item][who] = answer
    return {name: dict(r) for name, r in humans.items()}, judges


def session_agreement(session: LabelingSession) -> list[QuestionAgreement]:
    """One result per question, in the session's order; two queries whatever the session's size."""
    schemas = session.ordered_schemas()
    humans, judges = load_ratings(session, schemas)
    return [
        question_agreement(humans[s.name], s.input_type, judge=judges[s.name], question=s.name, title=s.title)
        for s in schemas
    ]


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
    "judge_mean_abs_diff",
    "note",
]


def agreement_rows(results: Sequence[QuestionAgreement]) -> list[dict[str, Any]]:
    """One CSV row per question; ``reviewer_vs_consensus`` as ``alice=0.9;bob=0.75``; ``None`` as empty."""
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
            "reviewer_vs_consensus": ";".join(f"{name}={share}" for name, share in r.reviewer_vs_consensus.items()),
            "judge_items": r.judge_items,
            "judge_agreement": r.judge_agreement,
            "judge_kappa": r.judge_kappa,
            "judge_mean_abs_diff": r.judge_mean_abs_diff,
            "note": r.note,
        }
        for r in results
    ]
