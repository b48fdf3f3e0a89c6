"""One self-contained HTML page of a run: what ``stepwire runs show RUN --html FILE`` writes.

The page needs no server and loads nothing: its CSS, script and pictures (inline SVG)
are in the file, and its Content-Security-Policy allows only that one style sheet and
that one script (by their SHA-256), so a browser fetches nothing and runs nothing
else even if a value on the page were not escaped. It shows:

* the DAG (:mod:`stepwire.run_graph`'s model), each step coloured by status, a link to
  its details;
* a timeline of the executions, packed in lanes so that steps that ran at the same
  time sit side by side;
* for each step: status, times, attempt and node, its parameters, its inputs (which
  upstream output each is), its outputs (type, URI, size of a local folder, a preview
  of a built-in value), why it failed, and the tail of its log.

Every text that comes from the run (names, parameters, URIs, previews, logs) is
HTML-escaped. The script records any error of the page (a script error, a blocked
load) in ``<pre id="page-errors">`` and marks ``<html data-page-ready="yes">`` once the
page is set up, which is what a headless browser test reads back.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stepwire import io_utils
from stepwire.materializers import value_codec
from stepwire.materializers.builtin_materializer import DEFAULT_FILENAME, BuiltInMaterializer
from stepwire.run_graph import SKIPPED, GraphStep, RunGraph, build_run_graph, format_duration
from stepwire.runs import ArtifactRecord, InputRecord, RunRecord, StepRecord

PREVIEW_CHARS = 300
"""The most characters a preview of a built-in value shows."""

LOG_TAIL_LINES = 200
"""The most lines of a step's log the page shows (the last ones)."""

_BUILTIN = f"{BuiltInMaterializer.__module__}.{BuiltInMaterializer.__qualname__}"
# Reading more than this to preview a value costs more than a preview is worth.
_MAX_PREVIEW_READ = 64 * 1024
# Sizing a folder with more entries than this is not cheap: its size is not shown.
_MAX_SIZED_ENTRIES = 10_000
_LOG_TAIL_CHARS = 20_000

# The DAG's boxes and the timeline's bars, in pixels.
_NODE_W, _NODE_H, _COLUMN, _ROW, _PAD = 172, 46, 226, 60, 20
# A DAG of at most this many levels is shrunk to the page's width; a longer one scrolls.
_FIT_LEVELS = 8
_LANE, _TIMELINE_W, _CHAR_W = 26, 900, 7


@dataclass(frozen=True)
class ArtifactView:
    """What the page can tell of an artifact's data without a materializer.

    Attributes:
        size: Bytes under its URI, for a local file or folder (None if unknown:
            remote, missing, or too many files to count cheaply).
        preview: The start of a built-in value's ``repr`` (None if it is not one or
            cannot be read).
    """

    size: int | None
    preview: str | None


def _local_path(uri: str) -> str | None:
    if io_utils.is_remote(uri):
        return None
    return uri.removeprefix("file://")


def _tree_size(path: str) -> int | None:
    """Bytes in a file or folder; None past :data:`_MAX_SIZED_ENTRIES` entries."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if not os.path.isdir(path):
        return None
    total, seen, folders = 0, 0, [path]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                seen += 1
                if seen > _MAX_SIZED_ENTRIES:
                    return None
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _builtin_preview(artifact: ArtifactRecord, path: str, chars: int) -> str | None:
    if artifact.materializer != _BUILTIN:
        return None
    data = os.path.join(path, DEFAULT_FILENAME)
    try:
        with open(data, "rb") as f:
            head = f.read(_MAX_PREVIEW_READ + 1)
        if len(head) > _MAX_PREVIEW_READ:
            # Too long to decode for a preview: the start of its JSON says enough.
            return _clip(head[: chars * 4].decode("utf-8", "replace"), chars)
        return _clip(repr(value_codec.loads(head.decode("utf-8"))), chars)
    except (OSError, ValueError, TypeError, RecursionError):
        return None


def describe_artifact(
    artifact: ArtifactRecord, *, preview_chars: int = PREVIEW_CHARS
) -> ArtifactView:
    """Sizes a local artifact and previews a built-in value, cheaply.

    Args:
        artifact: The artifact.
        preview_chars: The most characters of the preview.

    Returns:
        What could be told; nothing is read from a remote store.
    """
    path = _local_path(artifact.uri)
    if path is None:
        return ArtifactView(size=None, preview=None)
    try:
        size = _tree_size(path)
    except OSError:
        size = None
    return ArtifactView(size=size, preview=_builtin_preview(artifact, path, preview_chars))


def format_size(size: int | None) -> str:
    """Bytes for a person: ``812 B``, ``4.2 KiB``, ``1.0 GiB``; ``-`` if None.

    Args:
        size: The number of bytes.

    Returns:
        The text.
    """
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, bounded in characters too.

    Args:
        text: The log.
        lines: How many lines to keep.

    Returns:
        The tail.
    """
    tail = "\n".join(text.splitlines()[-lines:])
    return tail[-_LOG_TAIL_CHARS:]


# ---------------------------------------------------------------- escaping and ids


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def anchor(step: str) -> str:
    """The id of a step's section on the page (``#step-<name>``, escaped where needed).

    Args:
        step: The step name.

    Returns:
        ``step-`` and the name, each character outside ``[A-Za-z0-9_-]`` written as
        ``.<hex>.``, so different names never share an id.
    """
    return "step-" + re.sub(r"[^A-Za-z0-9_-]", lambda m: f".{ord(m.group()):x}.", step)


def _time(moment: dt.datetime | None, with_date: bool = False) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone()
    if with_date:
        return local.strftime("%Y-%m-%d %H:%M:%S %z")
    return local.strftime("%H:%M:%S.%f")[:-3]


# ---------------------------------------------------------------- the DAG


@dataclass(frozen=True)
class _Box:
    x: float
    y: float


def _layout(graph: RunGraph) -> dict[str, _Box]:
    levels = graph.levels
    tallest = max((len(steps) for steps in levels), default=0)
    boxes = {}
    for column, steps in enumerate(levels):
        top = _PAD + (tallest - len(steps)) * _ROW / 2
        for row, step in enumerate(steps):
            boxes[step.name] = _Box(_PAD + column * _COLUMN, top + row * _ROW)
    return boxes


def _edge(source: str, target: str, boxes: Mapping[str, _Box], dashed: bool) -> str:
    a, b = boxes[source], boxes[target]
    x1, y1 = a.x + _NODE_W, a.y + _NODE_H / 2
    x2, y2 = b.x - 4, b.y + _NODE_H / 2
    bend = max((x2 - x1) / 2, 30)
    kind = "edge dashed" if dashed else "edge"
    return (
        f'<path class="{kind}" data-from="{_e(source)}" data-to="{_e(target)}" '
        f'd="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
        f'{x2:.1f},{y2:.1f}" marker-end="url(#arrow)"/>'
    )


def _node(step: GraphStep, box: _Box) -> str:
    detail = step.status
    if step.duration is not None:
        detail += f" · {format_duration(step.duration)}"
    if step.record is not None and step.record.attempt > 1:
        detail += f" · attempt {step.record.attempt}"
    return (
        f'<a class="node" href="#{_e(anchor(step.name))}" data-step="{_e(step.name)}">'
        f"<title>{_e(step.name)}: {_e(detail)}</title>"
        f'<rect class="box st-{_e(step.status)}" x="{box.x:.1f}" y="{box.y:.1f}" '
        f'width="{_NODE_W}" height="{_NODE_H}" rx="7"/>'
        f'<text class="name" x="{box.x + 10:.1f}" y="{box.y + 19:.1f}">'
        f"{_e(_clip(step.name, 22))}</text>"
        f'<text class="detail" x="{box.x + 10:.1f}" y="{box.y + 36:.1f}">'
        f"{_e(_clip(detail, 26))}</text></a>"
    )


def _dag_svg(graph: RunGraph) -> str:
    boxes = _layout(graph)
    width = max((b.x for b in boxes.values()), default=0) + _NODE_W + _PAD + 4
    height = max((b.y for b in boxes.values()), default=0) + _NODE_H + _PAD
    edges = [
        _edge(source, step.name, boxes, step.status == SKIPPED)
        for step in graph.steps
        for source in step.upstream
    ]
    nodes = [_node(step, boxes[step.name]) for step in graph.steps]
    kind = "dag fit" if len(graph.levels) <= _FIT_LEVELS else "dag"
    return (
        f'<svg class="{kind}" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="DAG of the run">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="arrowhead" '
        'd="M0,0 L10,5 L0,10 z"/></marker></defs>'
        f'<g class="edges">{"".join(edges)}</g><g class="nodes">{"".join(nodes)}</g></svg>'
    )


# ---------------------------------------------------------------- the timeline


@dataclass(frozen=True)
class _Bar:
    step: GraphStep
    record: StepRecord
    lane: int
    x0: float
    x1: float
    label_inside: bool


def _lanes(graph: RunGraph, t0: dt.datetime, scale: float) -> list[_Bar]:
    """Packs the executions' bars in lanes, steps that ran at the same time side by side.

    A bar goes to the first lane that is free at its start, its label included.
    """
    timed = [(s.record.start, s.name, s, s.record) for s in graph.steps if s.record is not None]
    lane_ends: list[float] = []
    bars = []
    for _, _, step, record in sorted(timed, key=lambda t: (t[0], t[1])):
        x0 = (record.start - t0).total_seconds() * scale
        x1 = max(x0 + 4, (record.end - t0).total_seconds() * scale)
        label = len(_clip(step.name, 40)) * _CHAR_W + 8
        inside = x1 - x0 >= label
        busy_until = x1 if inside else x1 + label
        lane = next((i for i, end in enumerate(lane_ends) if end <= x0), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(busy_until)
        else:
            lane_ends[lane] = busy_until
        bars.append(_Bar(step, record, lane, x0, x1, inside))
    return bars


def _tick_step(total: float) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten) giving at most 10 ticks."""
    power = 10.0 ** math.floor(math.log10(total / 10)) if total > 0 else 1.0
    return next(f * power for f in (1, 2, 5, 10) if total / (f * power) <= 10)


def _tick(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else format_duration(seconds)


def _bar(bar: _Bar) -> str:
    step, record = bar.step, bar.record
    y = _PAD + bar.lane * _LANE
    x0, x1 = _PAD + bar.x0, _PAD + bar.x1
    tip = (
        f"{step.name}: {step.status}, {_time(record.start)} to {_time(record.end)}, "
        f"{format_duration(record.duration)}"
    )
    label_x = x0 + 4 if bar.label_inside else x1 + 4
    label_class = "label inside" if bar.label_inside else "label"
    return (
        f'<a class="bar" href="#{_e(anchor(step.name))}" data-step="{_e(step.name)}">'
        f"<title>{_e(tip)}</title>"
        f'<rect class="st-{_e(step.status)}" x="{x0:.1f}" y="{y + 3}" '
        f'width="{max(x1 - x0 - 1, 3):.1f}" height="{_LANE - 6}" rx="3"/>'
        f'<text class="{label_class}" x="{label_x:.1f}" y="{y + _LANE / 2 + 4:.1f}">'
        f"{_e(_clip(step.name, 40))}</text></a>"
    )


def _timeline_svg(graph: RunGraph) -> str:
    records = [s.record for s in graph.steps if s.record is not None]
    if not records:
        return '<p class="note">No step has an execution: nothing to draw.</p>'
    t0 = min(r.start for r in records)
    total = max((max(r.end for r in records) - t0).total_seconds(), 0.001)
    scale = _TIMELINE_W / total
    bars = _lanes(graph, t0, scale)
    lanes = max(b.lane for b in bars) + 1
    axis_y = _PAD + lanes * _LANE + 6
    step = _tick_step(total)
    ticks = []
    for i in range(int(total / step) + 1):
        x = _PAD + i * step * scale
        ticks.append(
            f'<line class="tick" x1="{x:.1f}" y1="{_PAD - 6}" x2="{x:.1f}" y2="{axis_y}"/>'
            f'<text class="axis" x="{x:.1f}" y="{axis_y + 14}">{_tick(i * step)}</text>'
        )
    right = max([_TIMELINE_W] + [b.x1 + (0 if b.label_inside else 300) for b in bars])
    width, height = right + 2 * _PAD, axis_y + 24
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="Timeline of the run">{"".join(ticks)}'
        f"{''.join(_bar(b) for b in bars)}</svg>"
    )


# ---------------------------------------------------------------- the steps


def _link(step: str) -> str:
    return f'<a href="#{_e(anchor(step))}">{_e(step)}</a>'


def _table(head: Iterable[str], rows: list[list[str]], empty: str) -> str:
    """A table of cells that are already HTML (callers escape), or a note if none."""
    if not rows:
        return f'<p class="none">{_e(empty)}</p>'
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _facts(step: GraphStep) -> str:
    record = step.record
    facts: list[tuple[str, str]] = [("status", _e(step.status))]
    if record is not None:
        facts += [
            ("cached", "yes: outputs reused from an earlier run" if step.cached else "no"),
            ("started", _e(_time(record.start, with_date=True))),
            ("ended", _e(_time(record.end, with_date=True))),
            ("recorded for", _e(format_duration(record.duration))),
            ("attempt", _e(f"{record.attempt}" + (f" on {record.node}" if record.node else ""))),
        ]
        if record.history:
            facts.append(("attempts", _e("; ".join(record.history))))
    else:
        facts.append(("execution", "none in this run: the step never ran"))
    if step.executions > 1:
        facts.append(("executions", _e(f"{step.executions} in this run; the latest is shown")))
    facts.append(("upstream", ", ".join(_link(s) for s in step.upstream) or "none"))
    facts.append(("downstream", ", ".join(_link(s) for s in step.downstream) or "none"))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _source(record: InputRecord) -> str:
    if not record.step:
        return '<span class="none">not an output of this run</span>'
    return f"{_link(record.step)}.{_e(record.output)}"


def _inputs(step: GraphStep) -> str:
    inputs = step.record.inputs if step.record else ()
    rows = [
        [f"<code>{_e(i.input)}</code>", _source(i), _e(i.type_name), f"<code>{_e(i.uri)}</code>"]
        for i in inputs
    ]
    return _table(("input", "from", "type", "URI"), rows, "none recorded")


def _outputs(step: GraphStep) -> str:
    rows = []
    for artifact in step.record.outputs if step.record else ():
        view = describe_artifact(artifact)
        preview = f"<pre class='preview'>{_e(view.preview)}</pre>" if view.preview else ""
        rows.append(
            [
                f"<code>{_e(artifact.output)}</code>",
                _e(artifact.type_name)
                + f"<br><small>{_e(artifact.datatype)}</small>"
                + (f"<br><small>{_e(artifact.summary)}</small>" if artifact.summary else ""),
                f"<code>{_e(artifact.uri)}</code>",
                _e(format_size(view.size)),
                preview,
            ]
        )
    return _table(("output", "type", "URI", "size", "preview"), rows, "none recorded")


def _parameters(step: GraphStep) -> str:
    parameters = step.record.parameters if step.record else ()
    rows = [[f"<code>{_e(k)}</code>", f"<code>{_e(v)}</code>"] for k, v in parameters]
    return _table(("parameter", "value (JSON)"), rows, "none")


def _log(step: GraphStep, logs: Mapping[str, str]) -> str:
    text = logs.get(step.name)
    if text is None:
        return '<p class="none">no log given for this step</p>'
    tail = log_tail(text)
    if not tail:
        return '<p class="none">the log is empty</p>'
    return f'<pre class="log">{_e(tail)}</pre>'


def _step_section(step: GraphStep, logs: Mapping[str, str], is_open: bool) -> str:
    record = step.record
    failure = ""
    if record is not None and record.failure:
        failure = f'<h4>Why it failed</h4><pre class="failure">{_e(record.failure)}</pre>'
    summary = f"{format_duration(step.duration)}" if step.duration is not None else "never ran"
    return (
        f'<details class="step" id="{_e(anchor(step.name))}"{" open" if is_open else ""}>'
        f'<summary><span class="badge st-{_e(step.status)}">{_e(step.status)}</span> '
        f'<span class="stepname">{_e(step.name)}</span> '
        f'<span class="muted">level {step.level} · {_e(summary)}</span></summary>'
        f"{_facts(step)}{failure}"
        f"<h4>Parameters</h4>{_parameters(step)}"
        f"<h4>Inputs</h4>{_inputs(step)}"
        f"<h4>Outputs</h4>{_outputs(step)}"
        f"<h4>Log (last {LOG_TAIL_LINES} lines at most)</h4>{_log(step, logs)}"
        "</details>"
    )


# ---------------------------------------------------------------- the page

_STATUS_COLORS = {
    "completed": ("#2e7d32", "#ffffff"),
    "cached": ("#1565c0", "#ffffff"),
    "failed": ("#c62828", "#ffffff"),
    "running": ("#f9a825", "#1a1a1a"),
    "new": ("#f9a825", "#1a1a1a"),
    "canceled": ("#6a1b9a", "#ffffff"),
    SKIPPED: ("#d5d5d5", "#333333"),
}

_CSS = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5f6b7a; --line: #d9dee5; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #f6f8fa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h4 { margin: 14px 0 4px; font-size: 13px; text-transform: uppercase; color: var(--muted); }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted, .none, .note { color: var(--muted); }
.summary { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 6px 0 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px;
  overflow: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 8px 0 0; font-size: 12px; }
.legend span::before { content: ""; display: inline-block; width: 11px; height: 11px;
  border-radius: 3px; margin-right: 5px; vertical-align: -1px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.dag .name { font-size: 13px; font-weight: 600; pointer-events: none; }
.dag .detail { font-size: 11px; pointer-events: none; }
svg.fit { max-width: 100%; height: auto; }
.edge { fill: none; stroke: #8a94a3; stroke-width: 1.6; }
.edge.dashed { stroke-dasharray: 5 4; }
.edge.lit { stroke: #1d2430; stroke-width: 2.6; }
.arrowhead { fill: #8a94a3; }
.node:hover .box, .bar:hover rect { stroke: #1d2430; stroke-width: 2.5; }
.timeline .tick { stroke: #e3e7ec; } .timeline .axis { font-size: 11px; fill: var(--muted);
  text-anchor: middle; }
.timeline .label { font-size: 12px; fill: var(--ink); }
.timeline .label.inside { fill: #ffffff; }
details.step { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  margin: 10px 0; padding: 8px 14px; }
details.step:target { outline: 3px solid #90caf9; }
summary { cursor: pointer; font-size: 15px; }
.stepname { font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid var(--line);
  padding: 4px 8px; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td code { word-break: break-all; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
pre.log, pre.failure { background: #0f1720; color: #e6edf3; padding: 10px; border-radius: 6px;
  max-height: 420px; overflow: auto; }
pre.failure { background: #3b0d0d; }
pre.preview { background: #f1f4f8; padding: 4px 6px; border-radius: 4px; }
pre.errors { background: #3b0d0d; color: #fff; padding: 10px; }
button { font: inherit; font-size: 12px; padding: 2px 10px; margin-right: 6px; cursor: pointer; }
""" + "".join(
    f".st-{s} {{ fill: {bg}; }} .badge.st-{s} {{ background: {bg}; color: {fg}; }}\n"
    f".legend .st-{s}::before {{ background: {bg}; }}\n"
    f".dag .st-{s} ~ text {{ fill: {fg}; }}\n"
    for s, (bg, fg) in _STATUS_COLORS.items()
)

_SCRIPT = """
(function () {
  "use strict";
  var errors = [];
  function show() {
    var box = document.getElementById("page-errors");
    if (!box) { return; }
    box.textContent = errors.join("\\n");
    box.setAttribute("data-count", String(errors.length));
    box.hidden = errors.length === 0;
  }
  function record(text) { errors.push(text); show(); }
  // Capturing: failed loads of elements do not bubble, they are still errors.
  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target !== window && target.tagName) {
      record("failed to load <" + target.tagName.toLowerCase() + "> " +
             (target.src || target.href || ""));
    } else {
      record("error: " + event.message + " (" + event.filename + ":" + event.lineno + ")");
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    record("unhandled rejection: " + event.reason);
  });
  document.addEventListener("securitypolicyviolation", function (event) {
    record("blocked by the page's policy: " + event.violatedDirective + " " +
           (event.blockedURI || ""));
  });
  function light(name, on) {
    document.querySelectorAll(".edge").forEach(function (edge) {
      if (edge.getAttribute("data-from") === name || edge.getAttribute("data-to") === name) {
        edge.classList.toggle("lit", on);
      }
    });
  }
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var section = id ? document.getElementById(id) : null;
    if (section && section.tagName === "DETAILS") { section.open = true; }
  }
  function setAll(open) {
    document.querySelectorAll("details.step").forEach(function (d) { d.open = open; });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".node[data-step], .bar[data-step]").forEach(function (el) {
      var name = el.getAttribute("data-step");
      el.addEventListener("mouseenter", function () { light(name, true); });
      el.addEventListener("mouseleave", function () { light(name, false); });
    });
    document.getElementById("expand-all").addEventListener("click", function () {
      setAll(true);
    });
    document.getElementById("collapse-all").addEventListener("click", function () {
      setAll(false);
    });
    window.addEventListener("hashchange", openTarget);
    openTarget();
    show();
    document.documentElement.setAttribute("data-page-ready", "yes");
  });
})();
"""


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def _policy() -> str:
    # Only this page's own style sheet and script, by hash; no fetch of any kind.
    return (
        f"default-src 'none'; style-src '{_digest(_CSS)}'; script-src '{_digest(_SCRIPT)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def _legend(graph: RunGraph) -> str:
    shown = [s for s in _STATUS_COLORS if s in graph.counts()] or ["completed"]
    return (
        '<div class="legend">'
        + "".join(f'<span class="st-{_e(s)}">{_e(s)}</span>' for s in shown)
        + "</div>"
    )


def _summary(graph: RunGraph) -> str:
    run = graph.run
    counts = ", ".join(f"{n} {s}" for s, n in graph.counts().items()) or "no steps"
    span = format_duration((run.end - run.start).total_seconds()) if run.start and run.end else "-"
    items = [
        f'<span class="badge st-{_e(run.status)}">{_e(run.status)}</span>',
        f"<span>{len(graph.steps)} steps: {_e(counts)}</span>",
        f"<span>started {_e(_time(run.start, with_date=True))}</span>",
        f"<span>ended {_e(_time(run.end, with_date=True))}</span>",
        f"<span>{_e(span)} from the first start to the last end</span>",
    ]
    return f'<div class="summary">{"".join(items)}</div>'


def render_run_page(
    run: RunRecord,
    *,
    planned: Mapping[str, Iterable[str]] | None = None,
    logs: Mapping[str, str] | None = None,
) -> str:
    """The HTML page of a run, in one self-contained document.

    Args:
        run: The run, as :class:`~stepwire.runs.RunReader` read it.
        planned: The pipeline's steps and their upstream steps, if the caller knows
            them: steps that never ran are then drawn as skipped (see
            :func:`stepwire.run_graph.build_run_graph`).
        logs: Step name to its log (or the tail of it); the page shows the last
            :data:`LOG_TAIL_LINES` lines of each.

    Returns:
        The page.
    """
    graph = build_run_graph(run, planned)
    logs = logs or {}
    open_all = len(graph.steps) <= 10
    sections = "".join(
        _step_section(step, logs, open_all or step.status == "failed") for step in graph.steps
    )
    title = f"{run.pipeline} · {run.run_name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_policy())}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="stepwire">'
        f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>"
        '<body><pre id="page-errors" class="errors" data-count="0" hidden></pre>'
        f'<header><h1>Run <span class="stepname">{_e(run.run_name)}</span></h1>'
        f'<div class="muted">pipeline {_e(run.pipeline)}</div>{_summary(graph)}</header>'
        f'<h2>DAG</h2><div class="card" id="dag">{_dag_svg(graph)}{_legend(graph)}</div>'
        '<h2>Timeline</h2><div class="card" id="timeline">'
        f"{_timeline_svg(graph)}<p class='note'>Each bar spans an execution from its "
        "registration in ML Metadata to its last update; steps that ran at the same time "
        "share no lane.</p></div>"
        '<h2>Steps</h2><p><button type="button" id="expand-all">expand all</button>'
        '<button type="button" id="collapse-all">collapse all</button></p>'
        f'<div id="steps">{sections}</div>'
        "</body></html>\n"
    )


def write_run_page(
    run: RunRecord,
    path: str | os.PathLike[str],
    *,
    planned: Mapping[str, Iterable[str]] | None = None,
    logs: Mapping[str, str] | None = None,
) -> Path:
    """Writes the HTML page of a run (see :func:`render_run_page`).

    Args:
        run: The run.
        path: The file to write (replaced if it exists; its folder must exist).
        planned: The pipeline's steps and their upstream steps, if known.
        logs: Step name to its log or its tail.

    Returns:
        The absolute path written.

    Raises:
        OSError: If the file cannot be written.
    """
    target = Path(path).absolute()
    target.write_text(render_run_page(run, planned=planned, logs=logs), encoding="utf-8")
    return target
