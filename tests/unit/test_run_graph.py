"""A run's DAG (stepwire.run_graph) and the records it is built from (stepwire.runs).

The records come from a real ML Metadata (SQLite in memory) where the edges have to
be read; the drawing is checked on records made here, wide and long ones included.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb
from stepwire_testkit import sqlite_store

from stepwire import _protos
from stepwire.attempts import ATTEMPT_PROPERTY, HISTORY_PROPERTY, NODE_PROPERTY
from stepwire.run_graph import (
    SKIPPED,
    TextStyle,
    build_run_graph,
    format_duration,
    planned_steps,
    render_run_graph,
)
from stepwire.runs import ArtifactRecord, InputRecord, RunReader, RunRecord, StepRecord
from stepwire.step_launcher import FAILURE_PROPERTY

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone.utc)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def record(
    name: str,
    *upstream: str,
    status: str = "completed",
    start: float = 0.0,
    seconds: float = 1.0,
    **fields: Any,
) -> StepRecord:
    """A step that read the output of each upstream step and wrote one output."""
    inputs = tuple(
        InputRecord(f"in_{u}", "stepwire.DataArtifact", f"/store/{u}/output/1", u, "output")
        for u in upstream
    )
    return StepRecord(
        step=name,
        status=status,
        start=T0 + dt.timedelta(seconds=start),
        end=T0 + dt.timedelta(seconds=start + seconds),
        outputs=(ArtifactRecord("output", "stepwire.DataArtifact", f"/store/{name}/output/1"),),
        inputs=inputs,
        **fields,
    )


def run_of(*steps: StepRecord) -> RunRecord:
    return RunRecord(pipeline="demo", run_name="demo-run", steps=steps)


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def row(text: str, step: str) -> str:
    """The drawing's row of a step."""
    [line] = [line for line in lines_of(text) if re.search(rf" . {step}\s+[a-z]+\s", line)]
    return line


def graph_lines(text: str) -> list[str]:
    """The lines of the drawing before the outputs section (URIs are never shortened)."""
    return text.split("\noutputs:\n", maxsplit=1)[0].splitlines()


# ---------------------------------------------------------------- the model


def test_levels_and_edges_follow_the_inputs() -> None:
    run = run_of(
        record("load"),
        record("split", "load", start=1),
        record("train_a", "split", start=2),
        record("train_b", "split", start=2.1),
        record("pick", "train_a", "train_b", "split", start=3),
    )
    graph = build_run_graph(run)
    assert [[s.name for s in level] for level in graph.levels] == [
        ["load"],
        ["split"],
        ["train_a", "train_b"],
        ["pick"],
    ]
    assert graph.step("pick").upstream == ("split", "train_a", "train_b")
    assert graph.step("split").downstream == ("pick", "train_a", "train_b")
    assert graph.step("pick").level == 4  # the longest path, not the shortest
    assert graph.counts() == {"completed": 5}


def test_planned_steps_without_an_execution_are_skipped_with_their_edges() -> None:
    run = run_of(record("load"), record("split", "load", status="failed", start=1))
    graph = build_run_graph(run, planned={"load": [], "split": ["load"], "train": ["split"]})
    train = graph.step("train")
    assert (train.status, train.record, train.duration, train.level) == (SKIPPED, None, None, 3)
    assert train.upstream == ("split",)
    assert graph.step("split").downstream == ("train",)
    assert graph.counts() == {"completed": 1, "failed": 1, SKIPPED: 1}


def test_a_step_with_several_executions_appears_once_with_its_latest() -> None:
    first = record("train", status="failed", start=0)
    second = record("train", status="completed", start=5)
    graph = build_run_graph(run_of(first, second))
    [train] = graph.steps
    assert (train.status, train.executions, train.record) == ("completed", 2, second)
    assert "2 executions in this run; the latest is shown" in render_run_graph(
        run_of(first, second)
    )


def test_contradicting_records_with_a_cycle_still_draw_every_step() -> None:
    graph = build_run_graph(run_of(record("a", "b"), record("b", "a"), record("c")))
    assert sorted(s.name for s in graph.steps) == ["a", "b", "c"]
    assert graph.step("c").level == 1
    assert graph.step("a").level == graph.step("b").level == 2


def test_planned_steps_reads_a_compiled_pipeline() -> None:
    ir = _protos.Pipeline()
    for name, upstream in (("load", []), ("split", ["load"]), ("train", ["split", "load"])):
        node = ir.nodes.add().pipeline_node
        node.node_info.id = name
        node.upstream_nodes.extend(upstream)
    assert planned_steps(ir) == {"load": (), "split": ("load",), "train": ("split", "load")}


def test_an_empty_run_draws_a_note() -> None:
    text = render_run_graph(run_of())
    assert "run demo-run of pipeline demo: completed" in text
    assert "no step has an execution in this run" in text


# ---------------------------------------------------------------- the drawing


def test_each_step_shows_status_cached_duration_attempt_and_what_feeds_it() -> None:
    run = run_of(
        record("load", seconds=1.874, attempt=1, node="vm"),
        record("split", "load", status="cached", start=2, seconds=0.01, node="vm"),
        record("train", "split", status="running", start=3, seconds=75, node="vm"),
    )
    text = render_run_graph(run)
    assert lines_of(text)[0] == "run demo-run of pipeline demo: running"
    assert "3 steps: 1 completed, 1 cached, 1 running" in text
    assert re.search(r"1 ─ ✓ load\s+completed\s+1\.87s\s+1 on vm$", row(text, "load"))
    assert re.search(r"2 ─ ↺ split\s+cached\s+0\.01s\s+1 on vm\s+← load$", row(text, "split"))
    assert re.search(r"3 ─ ▶ train\s+running\s+1m15s\s+1 on vm\s+← split$", row(text, "train"))
    assert "cached yes" not in text
    assert "from the execution's registration in ML Metadata to its last update" in text
    assert "  train.output (stepwire.DataArtifact): /store/train/output/1" in text
    assert "outputs:" not in render_run_graph(run, outputs=False)


def test_parallel_steps_share_a_rail_and_skipped_steps_show_no_time() -> None:
    run = run_of(record("a"), record("b", "a"), record("c", "a"))
    text = render_run_graph(run, planned={"d": ["b", "c"]})
    assert re.search(r"^\s+2 ┬ ✓ b\s", text, re.M)
    assert re.search(r"^\s+└ ✓ c\s", text, re.M)
    assert re.search(r"^\s+3 ─ ○ d\s+skipped\s+-\s+-\s+← b, c$", text, re.M)


def test_failures_and_retries_are_one_line_each_under_the_step() -> None:
    failed = record(
        "train",
        status="failed",
        attempt=2,
        node="node-b",
        history=("1 on node-a: FAILED", "2 on node-b: FAILED"),
        failure="Traceback (most recent call last):\n  ...\nValueError: bad learning rate\n",
    )
    lines = lines_of(render_run_graph(run_of(failed)))
    row = next(i for i, line in enumerate(lines) if " ✗ train " in line)
    assert lines[row + 1].strip() == "attempts: 1 on node-a: FAILED; 2 on node-b: FAILED"
    assert lines[row + 2].strip() == "why: ValueError: bad learning rate"
    assert "2 on node-b" in lines[row]


@pytest.mark.parametrize("width", [80, 100])
def test_a_fan_out_of_fifty_fits_the_width_and_the_fan_in_names_the_level(width: int) -> None:
    # The names differ only at their end: a shortened name keeps its end too.
    wide = [record(f"a_rather_long_step_name_for_shard_{i:02d}", "source") for i in range(50)]
    run = run_of(record("source"), *wide, record("merge", *(s.step for s in wide)))
    text = render_run_graph(run, style=TextStyle(width=width))
    lines = graph_lines(text)
    assert max(len(line) for line in lines) <= width
    shards = [line.split("✓ ")[1].split()[0] for line in lines if " ✓ a_rather" in line]
    assert len(set(shards)) == 50
    assert shards[7].startswith("a_rather_long")
    assert shards[7].endswith("_shard_07")
    assert "← all 50 steps of level 2" in text
    assert sum(line.lstrip().startswith("├ ") for line in lines) == 48  # 50: ┬, 48 ├, └


def test_a_long_chain_draws_one_level_a_step_without_recursion() -> None:
    chain = [record("s0000")] + [
        record(f"s{i:04d}", f"s{i - 1:04d}", start=i) for i in range(1, 3000)
    ]
    graph = build_run_graph(run_of(*chain))
    assert len(graph.levels) == 3000
    lines = graph_lines(render_run_graph(run_of(*chain), style=TextStyle(width=80)))
    assert max(len(line) for line in lines) <= 80
    assert any(re.match(r"^\s*3000 ─ ✓ s2999\s.*← s2998$", line) for line in lines)


def test_a_feeder_list_too_long_for_the_row_goes_below_it() -> None:
    feeders = [f"evaluate_model_{i}" for i in range(6)]
    others = (record(f) for f in [*feeders, "unrelated"])
    run = run_of(*others, record("pick", *feeders, start=2))
    lines = lines_of(render_run_graph(run, style=TextStyle(width=80)))
    row = next(i for i, line in enumerate(lines) if " ✓ pick " in line)
    assert "←" not in lines[row]
    assert lines[row + 1].startswith("        ← evaluate_model_0, ")
    assert len(lines[row + 1]) <= 80


def test_colour_only_when_asked_and_ascii_when_the_terminal_needs_it() -> None:
    run = run_of(record("a"), record("b", "a", status="failed"), record("c", "a"))
    assert not ANSI.search(render_run_graph(run))
    coloured = render_run_graph(run, style=TextStyle(color=True))
    assert "\x1b[1;31mfailed" in coloured
    assert ANSI.sub("", coloured) == render_run_graph(run)
    plain = render_run_graph(run, style=TextStyle(unicode=False))
    assert plain.isascii()
    assert re.search(r"^\s+2 \+ x b\s+failed\s.*<- a$", plain, re.M)


class _Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_the_style_of_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert TextStyle.for_stream(io.StringIO()) == TextStyle(width=100, color=False, unicode=False)
    terminal = TextStyle.for_stream(_Terminal())
    assert terminal.color
    assert terminal.unicode
    assert 80 <= terminal.width <= 120
    monkeypatch.setenv("NO_COLOR", "1")
    assert not TextStyle.for_stream(_Terminal()).color


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.014, "0.01s"),
        (9.994, "9.99s"),
        (12.34, "12.3s"),
        (245, "4m05s"),
        (7390, "2h03m"),
    ],
)
def test_durations_read_like_a_person_writes_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


# ---------------------------------------------------------------- what RunReader reads


class _Store:
    """A real ML Metadata in memory, written the way TFX and stepwire write a run."""

    def __init__(self) -> None:
        self.store = sqlite_store(":memory:")
        self.types = {
            kind: self.store.put_context_type(pb.ContextType(name=kind))
            for kind in ("pipeline", "pipeline_run", "node")
        }
        artifact_type = pb.ArtifactType(name="stepwire.DataArtifact")
        for name in ("materializer", "datatype"):
            artifact_type.properties[name] = pb.STRING
        self.artifact_type = self.store.put_artifact_type(artifact_type)
        self.contexts: dict[tuple[str, str], pb.Context] = {}

    def context(self, kind: str, name: str) -> pb.Context:
        if (kind, name) not in self.contexts:
            [context_id] = self.store.put_contexts(
                [pb.Context(type_id=self.types[kind], name=name)]
            )
            [self.contexts[kind, name]] = self.store.get_contexts_by_id([context_id])
        return self.contexts[kind, name]

    def execution(
        self,
        run: str,
        step: str,
        *,
        state: int = pb.Execution.COMPLETE,
        reads: dict[str, int] | None = None,
        writes: tuple[str, ...] = (),
        rewrites: dict[str, int] | None = None,
        properties: dict[str, str] | None = None,
    ) -> dict[str, int]:
        """Records one execution; returns its new output artifacts' ids by output name.

        ``rewrites`` are outputs that are existing artifacts, as a cache hit records them.
        """
        type_id = self.store.put_execution_type(pb.ExecutionType(name=f"demo.{step}"))
        execution = pb.Execution(type_id=type_id, last_known_state=state)
        for key, value in (properties or {}).items():
            execution.custom_properties[key].string_value = value
        execution.custom_properties[ATTEMPT_PROPERTY].int_value = 1
        execution.custom_properties[NODE_PROPERTY].string_value = "vm"
        execution.custom_properties[HISTORY_PROPERTY].string_value = "1 on vm: COMPLETE"
        pairs = []
        for name, artifact_id in (reads or {}).items():
            [artifact] = self.store.get_artifacts_by_id([artifact_id])
            pairs.append((artifact, self._event(pb.Event.INPUT, name)))
        for name, artifact_id in (rewrites or {}).items():
            [artifact] = self.store.get_artifacts_by_id([artifact_id])
            pairs.append((artifact, self._event(pb.Event.OUTPUT, name)))
        for name in writes:
            artifact = pb.Artifact(type_id=self.artifact_type, uri=f"/store/{step}/{name}/{run}")
            artifact.properties["datatype"].string_value = "builtins.int"
            pairs.append((artifact, self._event(pb.Event.OUTPUT, name)))
        contexts = [
            self.context("pipeline", "demo"),
            self.context("pipeline_run", run),
            self.context("node", f"demo.{step}"),
        ]
        _, artifact_ids, _ = self.store.put_execution(execution, pairs, contexts)
        outputs = artifact_ids[len(reads or {}) + len(rewrites or {}) :]
        return dict(zip(writes, outputs, strict=True))

    @staticmethod
    def _event(kind: int, key: str) -> pb.Event:
        event = pb.Event(type=kind)
        event.path.steps.add().key = key
        event.path.steps.add().index = 0
        return event


def test_the_reader_finds_parameters_inputs_and_upstream_steps_within_the_run() -> None:
    mlmd = _Store()
    first = mlmd.execution("run-1", "load", writes=("rows",))
    mlmd.execution(
        "run-1",
        "train",
        reads={"rows": first["rows"]},
        writes=("model",),
        properties={
            "lr": "0.1",
            "optimizer": '"<script>adam</script>"',
            "stepwire-step_source": '"abc"',
            "__execution_result__": "{}",
        },
    )
    # A second run from the cache: its load outputs the same artifact again, so
    # the reader must take the producer from this run, not from run-1.
    mlmd.execution("run-2", "load", state=pb.Execution.CACHED, rewrites={"rows": first["rows"]})
    mlmd.execution("run-2", "train", state=pb.Execution.CACHED, reads={"rows": first["rows"]})

    reader = RunReader(mlmd.store)
    train = next(s for s in reader.get_run("run-1").steps if s.step == "train")
    assert train.parameters == (("lr", "0.1"), ("optimizer", '"<script>adam</script>"'))
    assert train.inputs == (
        InputRecord("rows", "stepwire.DataArtifact", "/store/load/rows/run-1", "load", "rows"),
    )
    assert train.upstream == ("load",)
    assert train.outputs[0].datatype == "builtins.int"
    assert train.failure == ""

    run2 = reader.get_run("run-2")
    graph = build_run_graph(run2)
    assert graph.step("train").upstream == ("load",)
    assert [s.status for s in graph.steps] == ["cached", "cached"]


def test_the_reader_says_why_a_step_failed_and_only_while_it_is_failed() -> None:
    mlmd = _Store()
    mlmd.execution(
        "run",
        "a",
        state=pb.Execution.FAILED,
        properties={"__execution_result__": '{"resultMessage": "ValueError: boom"}'},
    )
    mlmd.execution(
        "run",
        "b",
        state=pb.Execution.FAILED,
        properties={FAILURE_PROPERTY: "the step stopped with SystemExit(3)"},
    )
    mlmd.execution(
        "run",
        "c",
        properties={"__execution_result__": '{"resultMessage": "an earlier attempt"}'},
    )
    steps = {s.step: s for s in RunReader(mlmd.store).get_run("run").steps}
    assert steps["a"].failure == "ValueError: boom"
    assert steps["b"].failure == "the step stopped with SystemExit(3)"
    assert steps["c"].failure == ""
    assert steps["b"].parameters == ()
