"""Live progress lines and the end-of-run summary that orchestrators print."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from stepwire.exceptions import StepwireError

STATUSES = ("completed", "cached", "failed", "skipped")


@dataclass
class RunSummary:
    """What happened to each step of a run.

    Attributes:
        pipeline: The pipeline name.
        run_name: The run name.
        statuses: Step name to ``completed``, ``cached``, ``failed`` or ``skipped``.
        durations: Step name to seconds, for steps that were launched.
        errors: Step name to the one-line error of a failed step.
        seconds: Wall time of the whole run.
    """

    pipeline: str
    run_name: str
    statuses: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        """True when no step failed or was skipped."""
        return all(status in {"completed", "cached"} for status in self.statuses.values())


class ProgressReporter:
    """Prints one line per step event, with the time since the run started."""

    def __init__(self, summary: RunSummary, width: int, stream: TextIO | None = None) -> None:
        """Creates the reporter.

        Args:
            summary: The summary the events are recorded into.
            width: Column width for step names.
            stream: Where to print; standard output by default.
        """
        self.summary = summary
        self._width = width
        self._stream = stream or sys.stdout
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def _line(self, step: str, text: str) -> None:
        elapsed = time.monotonic() - self._start
        with self._lock:
            print(
                f"  [{elapsed:6.1f}s] {step:<{self._width}}  {text}", file=self._stream, flush=True
            )

    def header(self, workers: int | None) -> None:
        """Announces the run."""
        where = f" on {workers} worker(s)" if workers else " in this process"
        print(
            f"stepwire: pipeline {self.summary.pipeline}, run {self.summary.run_name}{where}",
            file=self._stream,
            flush=True,
        )

    def started(self, step: str) -> None:
        """A step started."""
        self._line(step, "started")

    def submitted(self, step: str, to: str) -> None:
        """A step was handed to an engine that starts it when its inputs are done."""
        self._line(step, f"submitted to {to}")

    def finished(
        self, step: str, status: str, seconds: float, error: str = "", where: str = ""
    ) -> None:
        """A step ended as ``completed``, ``cached`` or ``failed``.

        Args:
            step: The step name.
            status: How it ended.
            seconds: How long it took.
            error: The one line that says why it failed.
            where: Where it ran, for orchestrators that place steps on nodes.
        """
        self.summary.statuses[step] = status
        self.summary.durations[step] = seconds
        text = f"{status.upper() if status == 'failed' else status} in {seconds:.1f}s"
        if where:
            text += f" ({where})"
        if error:
            self.summary.errors[step] = error
            text += f": {error}"
        self._line(step, text)

    def skipped(self, step: str, because: str) -> None:
        """A step was not started because an upstream step failed."""
        self.summary.statuses[step] = "skipped"
        self._line(step, f"skipped (upstream {because} failed)")

    def footer(self) -> None:
        """Prints the summary and how to inspect the run."""
        self.summary.seconds = time.monotonic() - self._start
        counts = Counter(self.summary.statuses.values())
        parts = ", ".join(f"{counts.get(status, 0)} {status}" for status in STATUSES)
        verdict = "succeeded" if self.summary.succeeded else "FAILED"
        print(
            f"stepwire: run {verdict}: {len(self.summary.statuses)} steps: {parts} "
            f"in {self.summary.seconds:.1f}s",
            file=self._stream,
        )
        print(
            f"stepwire: inspect it with: stepwire runs show {self.summary.run_name}",
            file=self._stream,
            flush=True,
        )


class PipelineRunFailedError(StepwireError):
    """A step of a run failed; the summary says which and what was skipped."""

    def __init__(self, summary: RunSummary) -> None:
        """Creates the error.

        Args:
            summary: The run's summary.
        """
        failed = ", ".join(f"{step}: {error}" for step, error in summary.errors.items())
        super().__init__(f"run {summary.run_name} of pipeline {summary.pipeline} failed ({failed})")
        self.summary = summary
