"""Calling the application on dataset records and keeping what MLflow tracing records, one trace per call.

A predict run (``evaluate --predict module:function``) calls ``predict_fn(**record.inputs)`` for each
record, as ``mlflow.genai.evaluate`` does. The function is wrapped in ``mlflow.trace`` unless it is
traced already, so every call is one trace whose root holds the inputs and the return value, and the
spans made inside it (``@mlflow.trace``, autologged clients) are its children. MLflow's own span
processor builds the trace; our exporter, instead of sending it to a tracking server, hands it to
the thread that made the call. The trace is then stored here like any imported MLflow trace.

A call that raises gives the ERROR trace MLflow records for it (the exception is an event of the
root span). A call that runs past ``PREDICT_TIMEOUT_SECONDS`` gives an ERROR trace made here, with
the inputs and a ``TimeoutError`` event; its thread is abandoned and what it records later is dropped.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .scorers.pool import CallPool

SOURCE_RUN_METADATA = "mlflow.sourceRun"  # as mlflow.genai.evaluate tags the traces of a run
MODEL_ID_METADATA = "mlflow.modelId"
RECORD_TAG = "mlflow.evaluation.datasetRecordId"

_captured = threading.local()
_install_lock = threading.Lock()
_installed = False


class PredictFunctionError(ValueError):
    """The predict function cannot be used; the message is one line."""


def load_predict_fn(path: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``package.module.function``) → the function."""
    module_name, sep, attribute = path.strip().partition(":")
    if not sep:
        module_name, _, attribute = path.strip().rpartition(".")
    if not module_name or not attribute:
        raise PredictFunctionError(f"predict function {path!r} is not of the form module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure of the user's module is a one-line error
        raise PredictFunctionError(
            f"predict function {path!r}: module {module_name!r} failed to import: {type(error).__name__}: {error}"
        ) from error
    function = getattr(module, attribute, None)
    if function is None:
        raise PredictFunctionError(f"predict function {path!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function) or inspect.isclass(function):
        raise PredictFunctionError(f"predict function {path!r} is not a function")
    if inspect.iscoroutinefunction(function):
        raise PredictFunctionError(f"predict function {path!r} is async; give a plain function")
    return function


def _install_capture() -> None:
    """Point MLflow tracing in this process at our exporter (once): traces stay in memory, nothing is sent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow.tracing import provider
        from mlflow.tracing.processor.mlflow_v3 import MlflowV3SpanProcessor
        from mlflow.tracing.trace_manager import InMemoryTraceManager
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class ThreadExporter(SpanExporter):
            """Hands each finished trace to the thread whose root span ended (where the call ran)."""

            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                manager = InMemoryTraceManager.get_instance()
                for span in spans:
                    if span.parent is None and (found := manager.pop_trace(span.context.trace_id)) is not None:
                        _captured.trace = found.trace
                return SpanExportResult.SUCCESS

            def shutdown(self) -> None:
                return None

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(MlflowV3SpanProcessor(span_exporter=ThreadExporter(), export_metrics=False))
        provider.provider.once.do_once(lambda: None)  # MLflow must not build its own provider over ours
        provider.provider.set(tracer_provider)
        _installed = True


@dataclass
class Prediction:
    """One call: the MLflow trace it recorded (as ``Trace.to_dict()``), and what it returned or raised."""

    trace: dict[str, Any]
    outputs: Any = None
    error: BaseException | None = None


def _traced(function: Callable[..., Any]) -> Callable[..., Any]:
    import mlflow

    return function if getattr(function, "__mlflow_traced__", False) else mlflow.trace(function)


def _fallback_trace(name: str, inputs: dict[str, Any], outputs: Any, error: BaseException | None) -> dict[str, Any]:
    """A one-span trace for a call MLflow recorded nothing for (it timed out, or it turned tracing off)."""
    import mlflow
    from mlflow.entities import SpanEvent, SpanStatusCode, SpanType

    _captured.trace = None
    span = mlflow.start_span_no_context(name, span_type=SpanType.CHAIN, inputs=inputs)
    if error is not None:
        span.add_event(SpanEvent.from_exception(error))
        span.end(status=SpanStatusCode.ERROR)
    else:
        span.end(outputs=outputs)
    trace = _captured.trace
    _captured.trace = None
    if trace is None:
        raise RuntimeError("MLflow tracing recorded no trace; is tracing disabled (MLFLOW_TRACING_ENABLED)?")
    return trace.to_dict()


def _call(function: Callable[..., Any], inputs: dict[str, Any]) -> Prediction:
    """Run in a pool thread: the call and the trace it left in this thread."""
    _captured.trace = None
    outputs, error = None, None
    try:
        outputs = function(**inputs)
    except Exception as raised:  # the app failed on this record: an ERROR trace, the run goes on
        error = raised
    trace = _captured.trace
    _captured.trace = None
    if trace is None:
        return Prediction(_fallback_trace(getattr(function, "__name__", "predict"), inputs, outputs, error), outputs)
    return Prediction(trace.to_dict(), outputs, error)


def new_predict_pool() -> CallPool:
    return CallPool(workers=settings.SCORER_WORKERS, timeout=settings.PREDICT_TIMEOUT_SECONDS)


def predict_all(
    function: Callable[..., Any], inputs: dict[int, dict[str, Any]], *, pool: CallPool
) -> dict[int, Prediction]:
    """``{key: Prediction}`` for each ``{key: inputs}``: every call in parallel, each with its deadline."""
    _install_capture()
    traced = _traced(function)
    outcomes = pool.run((key, lambda args=args: _call(traced, args)) for key, args in inputs.items())
    predictions: dict[int, Prediction] = {}
    name = getattr(function, "__name__", "predict")
    for key, (ok, value) in outcomes.items():
        if ok:
            predictions[key] = value
        else:  # the pool's deadline passed (or the call escaped with a BaseException)
            predictions[key] = Prediction(_fallback_trace(name, inputs[key], None, value), None, value)
    return predictions


def as_call_inputs(inputs: Any) -> dict[str, Any]:
    """A record's inputs as keyword arguments: MLflow requires a dict with string keys."""
    if not isinstance(inputs, dict) or not all(isinstance(key, str) for key in inputs):
        raise PredictFunctionError("a record's inputs must be an object with string keys to call predict_fn(**inputs)")
    return inputs
