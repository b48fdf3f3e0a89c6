"""A run's DAG as ML Metadata recorded it, and its drawing in a terminal.

:func:`build_run_graph` turns a :class:`~stepwire.runs.RunRecord` into a small frozen
model (:class:`RunGraph`): one :class:`GraphStep` per step, its upstream steps and its
level (1 for a step nothing feeds, else one more than its deepest upstream step).
:func:`render_run_graph` draws it as the text ``stepwire runs show RUN`` prints, and
:mod:`stepwire.run_page` draws the same model as HTML.

The edges come from the run's records: a step's upstream steps are those of the same
run whose output artifacts its execution read (its INPUT events). A step that never
ran has no execution, so ML Metadata knows neither it nor its edges; a caller that has
the pipeline passes its steps as ``planned`` (see :func:`planned_steps`), and the steps
without an execution are then drawn as ``skipped``.

The drawing is a table in levels rather than a picture of boxes and lines: it stays
readable in 80 columns for a fan-out of hundreds of steps and a chain of hundreds of
levels, since each step takes one line and names the steps that feed it.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from stepwire.runs import RunRecord, StepRecord

SKIPPED = "skipped"
"""The status of a planned step that has no execution in the run."""

STATUSES = ("completed", "cached", "failed", "running", "new", "canceled", SKIPPED)
"""Every status a step of a graph can have, in the order summaries list them."""

_MAX_NAME = 28
_ANSI = {
    "completed": "32",
    "cached": "36",
    "failed": "1;31",
    "running": "33",
    "new": "33",
    "canceled": "35",
    SKIPPED: "2",
}


@dataclass(frozen=True)
class GraphStep:
    """One step of a run's DAG.

    Attributes:
        name: The step name.
        status: Its latest execution's status, or ``skipped`` if it has none.
        level: 1 if nothing feeds it, else one more than its deepest upstream step.
        upstream: The steps that feed it, sorted.
        downstream: The steps it feeds, sorted.
        record: Its latest execution in the run (None if it has none).
        executions: How many executions of it the run holds.
    """

    name: str
    status: str
    level: int
    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    record: StepRecord | None
    executions: int

    @property
    def cached(self) -> bool:
        """Whether its outputs came from the cache."""
        return self.status == "cached"

    @property
    def duration(self) -> float | None:
        """Seconds its execution was recorded for (None if it has none)."""
        return None if self.record is None else self.record.duration


@dataclass(frozen=True)
class RunGraph:
    """A run's DAG.

    Attributes:
        run: The run.
        steps: Its steps by level; within a level, near the steps that feed them.
    """

    run: RunRecord
    steps: tuple[GraphStep, ...]

    @property
    def levels(self) -> tuple[tuple[GraphStep, ...], ...]:
        """The steps grouped by level, level 1 first."""
        grouped: dict[int, list[GraphStep]] = defaultdict(list)
        for step in self.steps:
            grouped[step.level].append(step)
        return tuple(tuple(grouped[level]) for level in sorted(grouped))

    def step(self, name: str) -> GraphStep:
        """One step by name.

        Args:
            name: The step name.

        Returns:
            The step.

        Raises:
            KeyError: If the graph has no step of that name.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        """How many steps have each status (only statuses some step has).

        Returns:
            Status to count, in the order of :data:`STATUSES`, unknown ones last.
        """
        found: dict[str, int] = defaultdict(int)
        for step in self.steps:
            found[step.status] += 1
        order = [s for s in STATUSES if s in found] + sorted(set(found) - set(STATUSES))
        return {status: found[status] for status in order}


def planned_steps(pb2_pipeline: Any) -> dict[str, tuple[str, ...]]:
    """The steps of a compiled pipeline and the steps each waits for.

    Args:
        pb2_pipeline: A pipeline IR (``BasePipeline.compile()``).

    Returns:
        Step name to its upstream step names, to pass as ``planned``.
    """
    planned: dict[str, tuple[str, ...]] = {}
    for wrapper in pb2_pipeline.nodes:
        if wrapper.WhichOneof("node") == "pipeline_node":
            node = wrapper.pipeline_node
            planned[node.node_info.id] = tuple(node.upstream_nodes)
    return planned


def _latest_records(run: RunRecord) -> tuple[dict[str, StepRecord], dict[str, int]]:
    latest: dict[str, StepRecord] = {}
    count: dict[str, int] = defaultdict(int)
    for record in run.steps:
        count[record.step] += 1
        known = latest.get(record.step)
        if known is None or (record.end, record.start) >= (known.end, known.start):
            latest[record.step] = record
    return latest, dict(count)


def _edges(
    latest: Mapping[str, StepRecord], planned: Mapping[str, Iterable[str]]
) -> dict[str, set[str]]:
    upstream: dict[str, set[str]] = {name: set(r.upstream) for name, r in latest.items()}
    for name, feeding in planned.items():
        upstream.setdefault(name, set()).update(feeding)
    for feeding in list(upstream.values()):
        for name in feeding:
            upstream.setdefault(name, set())
    for name, feeding in upstream.items():
        feeding.discard(name)
    return upstream


def _levels(upstream: Mapping[str, set[str]]) -> dict[str, int]:
    """Longest-path levels, without recursion (a chain may be thousands of steps long)."""
    waiting = {name: len(feeding) for name, feeding in upstream.items()}
    downstream: dict[str, list[str]] = defaultdict(list)
    for name, feeding in upstream.items():
        for source in feeding:
            downstream[source].append(name)
    level = {name: 1 for name, count in waiting.items() if count == 0}
    ready = sorted(level)
    while ready:
        source = ready.pop()
        for target in downstream[source]:
            level[target] = max(level.get(target, 1), level[source] + 1)
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    # Steps in a cycle (records that contradict each other) still get drawn, last.
    last = max(level.values(), default=0) + 1
    return {name: level.get(name, last) for name in upstream}


def _ordered(
    levels: Mapping[str, int],
    upstream: Mapping[str, set[str]],
    latest: Mapping[str, StepRecord],
) -> list[str]:
    """Steps by level; in a level, by the mean position of their upstream steps."""
    position: dict[str, float] = {}
    ordered: list[str] = []
    for level in sorted(set(levels.values())):
        names = [n for n in levels if levels[n] == level]

        def key(name: str) -> tuple[float, str, str]:
            placed = [position[u] for u in upstream[name] if u in position]
            mean = sum(placed) / len(placed) if placed else 0.0
            record = latest.get(name)
            started = record.start.isoformat() if record else "~"
            return (mean, started, name)

        names.sort(key=key)
        for index, name in enumerate(names):
            position[name] = float(index)
        ordered.extend(names)
    return ordered


def build_run_graph(run: RunRecord, planned: Mapping[str, Iterable[str]] | None = None) -> RunGraph:
    """Builds a run's DAG from its records.

    Args:
        run: The run, as :class:`~stepwire.runs.RunReader` read it.
        planned: The pipeline's steps and the steps each waits for
            (:func:`planned_steps`), if the caller knows them: a planned step without
            an execution is ``skipped``, and edges ML Metadata cannot know (to steps
            that never ran) are added. None: only what the run recorded.

    Returns:
        The graph; a step run more than once in the run appears once, with its
        latest execution.
    """
    latest, count = _latest_records(run)
    upstream = _edges(latest, planned or {})
    levels = _levels(upstream)
    downstream: dict[str, set[str]] = defaultdict(set)
    for name, feeding in upstream.items():
        for source in feeding:
            downstream[source].add(name)
    steps = []
    for name in _ordered(levels, upstream, latest):
        record = latest.get(name)
        steps.append(
            GraphStep(
                name=name,
                status=record.status if record else SKIPPED,
                level=levels[name],
                upstream=tuple(sorted(upstream[name])),
                downstream=tuple(sorted(downstream[name])),
                record=record,
                executions=count.get(name, 0),
            )
        )
    return RunGraph(run=run, steps=tuple(steps))


@dataclass(frozen=True)
class TextStyle:
    """How :func:`render_run_graph` draws.

    Attributes:
        width: The most columns a line of the drawing takes (output URIs excepted).
        color: Colour the statuses with ANSI escapes.
        unicode: Use box-drawing characters and symbols; ASCII otherwise.
    """

    width: int = 100
    color: bool = False
    unicode: bool = True

    @classmethod
    def for_stream(cls, stream: IO[str]) -> TextStyle:
        """The style for a stream: colour only on a terminal and without ``NO_COLOR``.

        Args:
            stream: Where the drawing is printed, e.g. ``sys.stdout``.

        Returns:
            The terminal's width kept within 80-120 columns (100 off a terminal),
            colour on a terminal unless ``NO_COLOR`` is set, and Unicode when the
            stream's encoding can write it.
        """
        is_tty = bool(getattr(stream, "isatty", lambda: False)())
        width = shutil.get_terminal_size((100, 24)).columns if is_tty else 100
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "─┬├└←✓↺✗▶○…".encode(encoding)
            unicode = True
        except (LookupError, UnicodeEncodeError):
            unicode = False
        return cls(
            width=min(max(width, 80), 120),
            color=is_tty and not os.environ.get("NO_COLOR"),
            unicode=unicode,
        )


@dataclass(frozen=True)
class _Glyphs:
    single: str
    first: str
    middle: str
    last: str
    arrow: str
    ellipsis: str
    symbols: Mapping[str, str]


_UNICODE = _Glyphs(
    single="─",
    first="┬",
    middle="├",
    last="└",
    arrow="←",
    ellipsis="…",
    symbols={
        "completed": "✓",
        "cached": "↺",
        "failed": "✗",
        "running": "▶",
        "new": "▶",
        "canceled": "✗",
        SKIPPED: "○",
    },
)
_ASCII = _Glyphs(
    single="-",
    first="+",
    middle="|",
    last="`",
    arrow="<-",
    ellipsis="...",
    symbols={
        "completed": "+",
        "cached": "=",
        "failed": "x",
        "running": ">",
        "new": ">",
        "canceled": "x",
        SKIPPED: "-",
    },
)


def format_duration(seconds: float | None) -> str:
    """A duration for a person: ``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` if None.

    Args:
        seconds: The duration.

    Returns:
        The text.
    """
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _clip(text: str, width: int, glyphs: _Glyphs) -> str:
    if len(text) <= width:
        return text
    keep = max(width - len(glyphs.ellipsis), 0)
    return text[:keep] + glyphs.ellipsis


def _clip_middle(text: str, width: int, glyphs: _Glyphs) -> str:
    # Names of steps made in a loop differ at the end as often as at the start.
    if len(text) <= width:
        return text
    room = max(width - len(glyphs.ellipsis), 0)
    head = (room + 1) // 2
    return text[:head] + glyphs.ellipsis + text[len(text) - (room - head) :]


def _attempt(step: GraphStep) -> str:
    record = step.record
    if record is None:
        return "-"
    node = f" on {record.node}" if record.node else ""
    return f"{record.attempt}{node}"


@dataclass(frozen=True)
class _Columns:
    name: int
    status: int
    duration: int
    attempt: int

    @property
    def fixed(self) -> int:
        """Columns of a row before its feeders: ``"  LLL R S "``, then the cells."""
        return 10 + self.name + 2 + self.status + 2 + self.duration + 2 + self.attempt


def _columns(graph: RunGraph, width: int) -> _Columns:
    name = min(max((len(s.name) for s in graph.steps), default=4), _MAX_NAME)
    attempt = min(max((len(_attempt(s)) for s in graph.steps), default=1), 24)
    columns = _Columns(name=max(name, 4), status=9, duration=7, attempt=max(attempt, 7))
    # Narrow terminals: give up columns of the name first, then of the node.
    while columns.fixed > width - 8 and columns.name > 12:
        columns = _Columns(columns.name - 1, columns.status, columns.duration, columns.attempt)
    while columns.fixed > width - 8 and columns.attempt > 10:
        columns = _Columns(columns.name, columns.status, columns.duration, columns.attempt - 1)
    return columns


@dataclass(frozen=True)
class _Drawing:
    """What every line of one drawing shares."""

    graph: RunGraph
    style: TextStyle
    glyphs: _Glyphs
    columns: _Columns

    @property
    def indent(self) -> str:
        """Where the lines below a step's row start: under its symbol."""
        return " " * 8

    def clip(self, text: str, width: int | None = None) -> str:
        """The text, cut to ``width`` (the drawing's width by default)."""
        return _clip(text, self.style.width if width is None else width, self.glyphs)

    def paint(self, text: str, status: str) -> str:
        """The text in the status's colour, if the style has colour."""
        if not self.style.color or status not in _ANSI:
            return text
        return f"\x1b[{_ANSI[status]}m{text}\x1b[0m"

    def feeders(self, step: GraphStep, width: int) -> tuple[str, bool]:
        """``← a, b, +3 more`` within ``width`` columns, and whether it names them all."""
        arrow, names = self.glyphs.arrow, list(step.upstream)
        previous = sorted(s.name for s in self.graph.steps if s.level == step.level - 1)
        whole_level = f"{arrow} all {len(names)} steps of level {step.level - 1}"
        if len(names) > 3 and previous == names and len(whole_level) <= width:
            return whole_level, True
        for shown in range(len(names), 0, -1):
            text = f"{arrow} " + ", ".join(names[:shown])
            if shown < len(names):
                text += f", +{len(names) - shown} more"
            if len(text) <= width:
                return text, shown == len(names)
        return self.clip(f"{arrow} {len(names)} steps: " + ", ".join(names), width), False


def _row(step: GraphStep, rail: str, drawing: _Drawing) -> str:
    columns = drawing.columns
    symbol = drawing.glyphs.symbols.get(step.status, "?")
    status = drawing.paint(f"{step.status:<{columns.status}}", step.status)
    return (
        f"{rail} {symbol} {_clip_middle(step.name, columns.name, drawing.glyphs):<{columns.name}}  "
        f"{status}  {format_duration(step.duration):>{columns.duration}}  "
        f"{drawing.clip(_attempt(step), columns.attempt):<{columns.attempt}}"
    )


def _step_lines(step: GraphStep, rail: str, drawing: _Drawing) -> list[str]:
    row = _row(step, rail, drawing)
    room = drawing.style.width - drawing.columns.fixed - 2
    beside, complete = drawing.feeders(step, room)
    if not step.upstream:
        lines = [row.rstrip()]
    elif complete:
        lines = [f"{row}  {beside}"]
    else:
        # Too many to name beside the row: the line below has the whole width.
        width = drawing.style.width - len(drawing.indent)
        lines = [row.rstrip(), drawing.indent + drawing.feeders(step, width)[0]]
    return lines + _notes(step, drawing)


def _notes(step: GraphStep, drawing: _Drawing) -> list[str]:
    record = step.record
    if record is None:
        return []
    notes = []
    if len(record.history) > 1:
        notes.append("attempts: " + "; ".join(record.history))
    if record.failure:
        lines = [line.strip() for line in record.failure.splitlines() if line.strip()]
        notes.append(f"why: {lines[-1] if lines else ''}")
    if step.executions > 1:
        notes.append(f"{step.executions} executions in this run; the latest is shown")
    width = drawing.style.width - len(drawing.indent)
    return [drawing.indent + drawing.clip(note, width) for note in notes]


def _rails(count: int, glyphs: _Glyphs) -> list[str]:
    if count == 1:
        return [glyphs.single]
    return [glyphs.first] + [glyphs.middle] * (count - 2) + [glyphs.last]


def _header(graph: RunGraph) -> list[str]:
    run = graph.run
    counts = ", ".join(f"{n} {status}" for status, n in graph.counts().items())
    total = len(graph.steps)
    lines = [
        f"run {run.run_name} of pipeline {run.pipeline}: {run.status}",
        f"  {total} step{'s' if total != 1 else ''}" + (f": {counts}" if counts else ""),
    ]
    if run.start and run.end:
        started = run.start.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        ended = run.end.astimezone().strftime("%H:%M:%S")
        lines.append(
            f"  started {started}, ended {ended}, "
            f"{format_duration((run.end - run.start).total_seconds())}"
        )
    return lines


def _table(drawing: _Drawing) -> list[str]:
    columns = drawing.columns
    lines = [
        f"  {'LVL':>3}   {'  STEP':<{columns.name + 2}}  {'STATUS':<{columns.status}}  "
        f"{'TIME':>{columns.duration}}  {'ATTEMPT':<{columns.attempt}}  INPUTS FROM"
    ]
    for steps in drawing.graph.levels:
        rails = _rails(len(steps), drawing.glyphs)
        for index, (step, rail) in enumerate(zip(steps, rails, strict=True)):
            number = f"{step.level:>3}" if index == 0 else "   "
            lines += _step_lines(step, f"  {number} {rail}", drawing)
    return lines


def _legend(drawing: _Drawing) -> list[str]:
    symbols = "  ".join(
        f"{drawing.glyphs.symbols[s]} {s}"
        for s in ("completed", "cached", "failed", "running", SKIPPED)
    )
    return [
        drawing.clip(f"  {symbols} (never ran)"),
        drawing.clip("  TIME: from the execution's registration in ML Metadata to its last update"),
    ]


def _outputs(graph: RunGraph) -> list[str]:
    lines = [
        f"  {step.name}.{artifact.output} ({artifact.type_name}): {artifact.uri}"
        + (f"\n      {artifact.summary}" if artifact.summary else "")
        for step in graph.steps
        for artifact in (step.record.outputs if step.record else ())
    ]
    return ["", "outputs:", *lines] if lines else []


def render_run_graph(
    run: RunRecord,
    *,
    planned: Mapping[str, Iterable[str]] | None = None,
    style: TextStyle | None = None,
    outputs: bool = True,
) -> str:
    """Draws a run's DAG as text for a terminal: what ``stepwire runs show RUN`` prints.

    One line per step, grouped in levels: the steps of a level can run side by side
    (the rail ``┬ ├ └`` joins them), and each names the steps that feed it; a list
    too long for the row goes on the line below. For example::

        run wine_classifier-... of pipeline wine_classifier: completed
          8 steps: 6 completed, 2 cached
          started 2026-01-05 10:00:00, ended 10:00:12, 12.2s

          LVL     STEP              STATUS        TIME  ATTEMPT  INPUTS FROM
            1 ─ ✓ load_data         completed    1.87s  1 on vm
            2 ─ ✓ split             completed    2.19s  1 on vm  ← load_data
            3 ┬ ↺ train_logistic    cached       0.01s  1 on vm  ← split
              └ ↺ train_ridge       cached       0.01s  1 on vm  ← split
            ...

    Args:
        run: The run.
        planned: The pipeline's steps and their upstream steps, if known (see
            :func:`build_run_graph`).
        style: Width, colour and characters; None: 100 columns, no colour, Unicode.
        outputs: Whether to list each step's output artifacts (name, type, URI)
            after the graph; URIs are never shortened, so those lines may be wider.

    Returns:
        The text, ending with a newline.
    """
    style = style or TextStyle()
    graph = build_run_graph(run, planned)
    lines = _header(graph)
    if not graph.steps:
        return "\n".join([*lines, "  no step has an execution in this run"]) + "\n"
    drawing = _Drawing(
        graph=graph,
        style=style,
        glyphs=_UNICODE if style.unicode else _ASCII,
        columns=_columns(graph, style.width),
    )
    lines += ["", *_table(drawing), "", *_legend(drawing)]
    if outputs:
        lines += _outputs(graph)
    return "\n".join(lines) + "\n"
