"""The tests' fake OpenAI-compatible judge endpoint as a process of its own: every verdict after ``--delay`` seconds.

Prints its base URL on one line, then serves until stdin closes (its parent exited) or it is terminated.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from _common import ROOT  # noqa: F401 - puts the repository on sys.path

from tests.evaluation.judges.conftest import FakeJudgeServer, verdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    delay = parser.parse_args().delay
    server = FakeJudgeServer()
    server.default = dataclasses.replace(verdict(), delay=delay)
    server.thread.start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
