"""A thread pool for scorer calls with a deadline per call.

``concurrent.futures`` cannot take a thread back from a call that never returns. Here a call
running past its deadline is reported as a ``ScorerTimeout``, its thread is abandoned (it is a
daemon and exits when the call returns; its result is dropped) and a fresh thread takes its place,
so a hung scorer costs one thread, not the run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from contextvars import copy_context
from typing import Any


class ScorerTimeout(TimeoutError):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"timed out after {seconds:g} seconds")


_STOP = object()


class CallPool:
    def __init__(self, *, workers: int, timeout: float) -> None:
        self.timeout = timeout
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Hashable, bool, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Hashable, float, float]] = {}  # thread -> (call, deadline, timeout)
        self._abandoned: set[int] = set()
        self._threads: list[threading.Thread] = []
        for _ in range(workers):
            self._start_worker()

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._work, name="scorer-call", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            key, function, timeout = job
            with self._lock:
                self._running[me] = (key, time.monotonic() + timeout, timeout)
            try:
                outcome = (key, True, function())
            except BaseException as error:  # a scorer may raise anything; it becomes its trace's error
                outcome = (key, False, error)
            with self._lock:
                self._running.pop(me, None)
                if me in self._abandoned:
                    self._abandoned.discard(me)
                    return
            self._results.put(outcome)

    def run(
        self, calls: Iterable[tuple[Hashable, Callable[[], Any]] | tuple[Hashable, Callable[[], Any], float]]
    ) -> dict[Hashable, tuple[bool, Any]]:
        """Call every function; ``{key: (True, value) | (False, exception)}`` once all returned or timed out.

        A call may bring its own deadline in seconds (at most the pool's ``timeout``).
        """
        pending = 0
        for key, function, *deadline in calls:
            context = copy_context()
            timeout = min(deadline[0], self.timeout) if deadline and deadline[0] else self.timeout
            self._jobs.put((key, lambda f=function, c=context: c.run(f), timeout))
            pending += 1
        done: dict[Hashable, tuple[bool, Any]] = {}
        while len(done) < pending:
            try:
                key, ok, value = self._results.get(timeout=self._next_wait())
            except queue.Empty:
                self._expire(done)
                continue
            done.setdefault(key, (ok, value))
        return done

    def _next_wait(self) -> float:
        with self._lock:
            deadlines = [deadline for _, deadline, _ in self._running.values()]
        if not deadlines:
            return self.timeout
        return max(0.001, min(deadlines) - time.monotonic())

    def _expire(self, done: dict[Hashable, tuple[bool, Any]]) -> None:
        now = time.monotonic()
        with self._lock:
            late = [
                (ident, key, seconds) for ident, (key, deadline, seconds) in self._running.items() if now >= deadline
            ]
            for ident, key, seconds in late:
                del self._running[ident]
                self._abandoned.add(ident)
                done[key] = (False, ScorerTimeout(seconds))
        for _ in late:
            self._start_worker()

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(_STOP)

    def __enter__(self) -> CallPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
