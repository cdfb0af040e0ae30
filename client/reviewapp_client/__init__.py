"""Python client for the review app's JSON API, in MLflow 3's vocabulary.

import reviewapp_client
reviewapp_client.configure(url="https://reviews.example.com", token="…")  # or REVIEWAPP_URL / REVIEWAPP_TOKEN
df = reviewapp_client.search_traces(model_id="m-…")  # the columns of mlflow.search_traces
"""

from . import datasets, evaluation, label_schemas, labeling, scorers
from ._http import ApiClient, configure, get_client
from .errors import ReviewAppError
from .tracing import (
    Experiment,
    Trace,
    TraceData,
    TraceInfo,
    delete_trace_tag,
    get_trace,
    log_expectation,
    log_feedback,
    override_feedback,
    search_assessments,
    search_experiments,
    search_traces,
    set_trace_tag,
    trace_ids_of,
)

__version__ = "0.1.0"

__all__ = [
    "ApiClient",
    "Experiment",
    "ReviewAppError",
    "Trace",
    "TraceData",
    "TraceInfo",
    "__version__",
    "configure",
    "datasets",
    "delete_trace_tag",
    "evaluation",
    "get_client",
    "get_trace",
    "label_schemas",
    "labeling",
    "log_expectation",
    "log_feedback",
    "override_feedback",
    "scorers",
    "search_assessments",
    "search_experiments",
    "search_traces",
    "set_trace_tag",
    "trace_ids_of",
]
