"""Phase timestamps and self-time buckets for the instrumented step scripts (stdlib only).

Instrumentation from outside: functions of TFX and stepwire are wrapped (in the
measuring process only) so that each call's own time, without the time of wrapped
calls nested in it, is added to a named bucket. Marks are ``time.monotonic()``
stamps, comparable with the parent's stamps (one system-wide clock on Linux).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Callable
from typing import Any


class PhaseTimer:
    """Marks and buckets of one process, written as JSON at the end."""

    def __init__(self, start: float) -> None:
        self.marks: list[tuple[str, float]] = [("start", start)]
        self.buckets: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._stack: list[float] = []

    def mark(self, name: str) -> None:
        self.marks.append((name, time.monotonic()))

    def wrap(
        self,
        owner: Any,
        attribute: str,
        bucket: str | Callable[..., str | None],
        *,
        top_level_only: bool = False,
    ) -> None:
        """Times every call of ``owner.attribute`` into ``bucket`` (or ``bucket(*args)``)."""
        original = inspect.getattr_static(owner, attribute)
        wrapped_static = isinstance(original, staticmethod)
        wrapped_class = isinstance(original, classmethod)
        function = original.__func__ if (wrapped_static or wrapped_class) else original

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = bucket(*args, **kwargs) if callable(bucket) else bucket
            if name is None or (top_level_only and self._stack):
                return function(*args, **kwargs)
            start = time.monotonic()
            self._stack.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.monotonic() - start
                nested = self._stack.pop()
                self.buckets[name] = self.buckets.get(name, 0.0) + elapsed - nested
                self.counts[name] = self.counts.get(name, 0) + 1
                if self._stack:
                    self._stack[-1] += elapsed

        if wrapped_static:
            setattr(owner, attribute, staticmethod(timed))
        elif wrapped_class:
            setattr(owner, attribute, classmethod(timed))
        else:
            setattr(owner, attribute, timed)

    def wrap_tfx_launcher(self) -> None:
        """Buckets of TFX's launcher and ML Metadata, shared by the floor and stepwire."""
        from tfx.orchestration import metadata
        from tfx.orchestration.portable import execution_watcher, launcher

        # Every ML Metadata connection class's own __enter__ (stepwire may subclass TFX's).
        classes, seen = [metadata.Metadata], set()
        while classes:
            cls = classes.pop()
            if cls in seen:
                continue
            seen.add(cls)
            classes += cls.__subclasses__()
            if "__enter__" in cls.__dict__:
                self.wrap(cls, "__enter__", "metadata store connect")
        self.wrap(launcher.Launcher, "__init__", "launcher: build (executor operator)")
        self.wrap(
            launcher.Launcher,
            "_prepare_execution",
            "launcher: prepare (inputs, contexts, register execution)",
        )
        watcher = "launcher: execution watcher (gRPC server)"
        for name in ("__init__", "start", "stop"):
            self.wrap(execution_watcher.ExecutionWatcher, name, watcher)
        self.wrap(launcher.Launcher, "_run_executor", "launcher: executor run")
        self.wrap(launcher.Launcher, "_publish_successful_execution", "launcher: publish")
        self.wrap(launcher.Launcher, "launch", "launcher: other")

    def write(self) -> None:
        """Writes the marks and buckets to ``$BENCH_PHASES_OUT`` if set."""
        self.mark("done")
        path = os.environ.get("BENCH_PHASES_OUT")
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump({"marks": self.marks, "buckets": self.buckets, "counts": self.counts}, f)
