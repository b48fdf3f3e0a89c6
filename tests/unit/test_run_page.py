"""The HTML page of a run (stepwire.run_page): escaped, complete, self-contained.

A browser opens the page in tests/e2e/test_run_page_browser.py; here the document
itself is read, with Python's own HTML parser where structure matters.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stepwire.materializers import value_codec
from stepwire.run_page import (
    LOG_TAIL_LINES,
    PREVIEW_CHARS,
    anchor,
    describe_artifact,
    format_size,
    render_run_page,
    write_run_page,
)
from stepwire.runs import ArtifactRecord, InputRecord, RunRecord, StepRecord

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone.utc)
BUILTIN = "stepwire.materializers.builtin_materializer.BuiltInMaterializer"
EVIL = "<script>alert('x')</script>"


def record(
    name: str,
    *upstream: str,
    status: str = "completed",
    start: float = 0.0,
    seconds: float = 1.0,
    outputs: tuple[ArtifactRecord, ...] = (),
    **fields: object,
) -> StepRecord:
    inputs = tuple(
        InputRecord(f"in_{u}", "stepwire.DataArtifact", f"/store/{u}/output/1", u, "output")
        for u in upstream
    )
    return StepRecord(
        step=name,
        status=status,
        start=T0 + dt.timedelta(seconds=start),
        end=T0 + dt.timedelta(seconds=start + seconds),
        outputs=outputs,
        inputs=inputs,
        **fields,  # type: ignore[arg-type]
    )


def run_of(*steps: StepRecord, name: str = "demo-run") -> RunRecord:
    return RunRecord(pipeline="demo", run_name=name, steps=steps)


def builtin_output(folder: Path, value: object, output: str = "output") -> ArtifactRecord:
    """An artifact folder as the built-in materializer writes it."""
    folder.mkdir(parents=True)
    (folder / "data.json").write_text(value_codec.dumps(value), encoding="ascii")
    return ArtifactRecord(output, "stepwire.DataArtifact", str(folder), "builtins.dict", BUILTIN)


class Page(HTMLParser):
    """What a page holds: its elements' attributes and its text, as a parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts = 0
        self._in: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self.scripts += tag == "script"
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if not (set(self._in) & {"script", "style"}):
            self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.elements
            if t == tag
            and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def classes(self, tag: str, name: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements if t == tag and name in (a.get("class") or "").split()]

    def rects_of(self, link_class: str) -> dict[str, dict[str, str | None]]:
        """Step name to the rectangle drawn in its link (``node``: DAG, ``bar``: timeline)."""
        found: dict[str, dict[str, str | None]] = {}
        step = None
        for tag, attrs in self.elements:
            if tag == "a":
                is_link = link_class in (attrs.get("class") or "").split()
                step = attrs.get("data-step") if is_link else None
            elif tag == "rect" and step is not None:
                found[step] = attrs
                step = None
        return found

    def statuses(self) -> dict[str, str]:
        """Step name to the status its DAG box is coloured by."""
        return {
            name: next(c for c in (rect.get("class") or "").split() if c.startswith("st-"))[3:]
            for name, rect in self.rects_of("node").items()
        }


def test_everything_from_the_run_is_escaped(tmp_path: Path) -> None:
    evil_step = record(
        f"step_{EVIL}",
        status="failed",
        parameters=(("comment", f'"{EVIL}"'), (f"{EVIL}", "1")),
        outputs=(builtin_output(tmp_path / "out", {"note": EVIL}),),
        node=EVIL,
        history=(f"1 on {EVIL}: FAILED",),
        failure=f"ValueError: {EVIL}",
    )
    evil_step = dataclasses.replace(
        evil_step, inputs=(InputRecord(EVIL, EVIL, f"/{EVIL}", "load", EVIL),)
    )
    run = run_of(record("load"), evil_step, name=f"run-{EVIL}")
    page = render_run_page(run, logs={evil_step.step: f"</pre>{EVIL}\n"})
    assert "<script>alert" not in page
    assert "</pre><script>" not in page
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 9
    parsed = Page(page)
    assert parsed.scripts == 1  # the page's own
    assert any(EVIL in text for text in parsed.text)  # shown as text, not markup


def test_every_step_is_drawn_described_and_linked() -> None:
    names = ["load", "split", "train_a", "train_b", "pick"]
    run = run_of(
        record("load"),
        record("split", "load", start=1),
        record("train_a", "split", start=2, seconds=3),
        record("train_b", "split", start=2.2, status="cached", seconds=0.01),
        record("pick", "train_a", "train_b", start=5, status="failed"),
    )
    page = Page(render_run_page(run))
    for name in names:
        [section] = page.having("details", id=f"step-{name}")
        assert "open" in section  # few steps: every section is open
        assert len(page.having("a", class_="node", data_step=name)) == 1
        assert len(page.having("a", class_="bar", data_step=name)) == 1
    edges = {(a["data-from"], a["data-to"]) for a in page.classes("path", "edge")}
    assert edges == {
        ("load", "split"),
        ("split", "train_a"),
        ("split", "train_b"),
        ("train_a", "pick"),
        ("train_b", "pick"),
    }
    assert page.statuses() == {
        "load": "completed",
        "split": "completed",
        "train_a": "completed",
        "train_b": "cached",
        "pick": "failed",
    }
    badges = [a.get("class") for a in page.classes("span", "badge")]
    assert badges.count("badge st-failed") == 2  # the run and its failed step


def test_each_status_has_its_colour_and_a_skipped_step_never_ran() -> None:
    run = run_of(record("load"), record("split", "load", status="failed", start=1))
    text = render_run_page(run, planned={"train": ["split"], "split": ["load"], "load": []})
    page = Page(text)
    assert page.statuses() == {"load": "completed", "split": "failed", "train": "skipped"}
    [dashed] = page.classes("path", "dashed")
    assert (dashed["data-from"], dashed["data-to"]) == ("split", "train")
    assert "none in this run: the step never ran" in text
    assert not page.having("a", class_="bar", data_step="train")  # nothing to time
    colours = dict(re.findall(r"\.st-([a-z]+) \{ fill: (#[0-9a-f]{6}); \}", text))
    assert len(set(colours.values())) >= 6
    assert {"completed", "cached", "failed", "running", "skipped"} <= set(colours)


def test_parallel_steps_get_lanes_of_their_own_and_sequential_ones_share() -> None:
    run = run_of(
        record("a", seconds=10),
        record("b", "a", start=10, seconds=10),
        record("c", "a", start=10.5, seconds=9),
        record("d", "b", "c", start=20, seconds=10),
    )
    page = Page(render_run_page(run))
    lane_y = {name: float(rect["y"] or 0) for name, rect in page.rects_of("bar").items()}
    assert lane_y["b"] != lane_y["c"]
    assert lane_y["a"] == lane_y["b"] == lane_y["d"]


def test_outputs_show_size_and_a_bounded_escaped_preview(tmp_path: Path) -> None:
    small = builtin_output(tmp_path / "small", {"best": "<b>ridge</b>", "accuracy": 0.98})
    big = builtin_output(tmp_path / "big", list(range(20_000)), output="big")
    view = describe_artifact(small)
    assert view.preview == repr({"best": "<b>ridge</b>", "accuracy": 0.98})
    assert view.size == (tmp_path / "small" / "data.json").stat().st_size
    big_view = describe_artifact(big)
    assert big_view.preview is not None
    assert len(big_view.preview) <= PREVIEW_CHARS
    assert big_view.preview.startswith("[0, 1, 2, 3, 4, 5,")
    page = render_run_page(run_of(record("report", outputs=(small, big))))
    assert "{&#x27;best&#x27;: &#x27;&lt;b&gt;ridge&lt;/b&gt;&#x27;" in page
    assert "<b>ridge</b>" not in page
    assert format_size(view.size) in page


def test_a_value_another_materializer_wrote_or_a_remote_one_gets_no_preview(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "arrays"
    folder.mkdir()
    (folder / "data.npy").write_bytes(b"\x93NUMPY" + bytes(1000))
    numpy = ArtifactRecord("x", "stepwire.DataArtifact", str(folder), "numpy.ndarray", "np.M")
    assert describe_artifact(numpy).preview is None
    assert describe_artifact(numpy).size == 1006
    remote = ArtifactRecord(
        "y", "stepwire.DataArtifact", "s3://bucket/a/1", "builtins.int", BUILTIN
    )
    assert (describe_artifact(remote).size, describe_artifact(remote).preview) == (None, None)
    missing = ArtifactRecord("z", "t", str(tmp_path / "gone"), "builtins.int", BUILTIN)
    assert (describe_artifact(missing).size, describe_artifact(missing).preview) == (None, None)


def test_parameters_inputs_attempts_and_the_log_tail_are_shown() -> None:
    train = record(
        "train",
        "split",
        parameters=(("lr", "0.1"), ("optimizer", '"adam"')),
        attempt=2,
        node="node-b",
        history=("1 on node-a: FAILED", "2 on node-b: COMPLETE"),
    )
    log = "\n".join(f"line {i}" for i in range(1000))
    page = render_run_page(run_of(record("split"), train), logs={"train": log})
    assert "<code>lr</code></td><td><code>0.1</code>" in page
    assert "<code>optimizer</code></td><td><code>&quot;adam&quot;</code>" in page
    assert '<a href="#step-split">split</a>.output' in page
    assert "2 on node-b" in page
    assert "1 on node-a: FAILED; 2 on node-b: COMPLETE" in page
    assert f"line {1000 - LOG_TAIL_LINES}\n" in page
    assert f"line {999 - LOG_TAIL_LINES}\n" not in page
    assert "no log given for this step" in page  # split's


def test_the_page_loads_nothing_and_allows_only_its_own_style_and_script() -> None:
    page = render_run_page(run_of(record("a"), record("b", "a")))
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    rules = policy.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in rules
    for tag in ("style", "script"):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S)
        assert body is not None
        digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in rules
    # The only URL is the SVG namespace; nothing has a src or a remote href.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert " src=" not in page
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))
    assert ' style="' not in page  # the policy would block inline style attributes


def test_a_wide_run_keeps_sections_closed_and_ids_apart() -> None:
    wide = [record(f"shard.{i}", "source", start=1) for i in range(50)]
    failed = record("shard_2e_0", "source", start=1, status="failed")
    page = Page(render_run_page(run_of(record("source"), *wide, failed)))
    sections = page.having("details")
    assert len(sections) == 52
    ids = [s["id"] for s in sections]
    assert len(set(ids)) == 52
    assert anchor("shard.0") != anchor("shard_2e_0")
    assert [s["id"] for s in sections if "open" in s] == [anchor("shard_2e_0")]
    assert len(page.classes("a", "node")) == 52


@pytest.mark.parametrize("name", ["a b", "ü", "x/y", "<", "-"])
def test_anchors_are_plain_ids(name: str) -> None:
    assert re.fullmatch(r"step-[A-Za-z0-9_.-]+", anchor(name))


def test_write_run_page_writes_one_utf8_file(tmp_path: Path) -> None:
    written = write_run_page(run_of(record("ünïcode")), tmp_path / "run.html")
    assert written == (tmp_path / "run.html").absolute()
    text = written.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "ünïcode" in text
    assert list(tmp_path.iterdir()) == [written]


def test_a_run_without_executions_still_makes_a_page() -> None:
    page = Page(render_run_page(run_of()))
    assert not page.classes("a", "node")
    assert "No step has an execution: nothing to draw." in "".join(page.text)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**20, "5.0 MiB"),
        (3 * 2**40, "3072.0 GiB"),
    ],
)
def test_sizes_read_like_a_person_writes_them(size: int | None, text: str) -> None:
    assert format_size(size) == text
