"""The run page in a real browser: Debian's Chromium, headless, on the demo's run.

The demo runs through the CLI with the subprocess orchestrator; its page is written
from what ML Metadata recorded and opened in ``/usr/bin/chromium``. ``--dump-dom``
gives the document after its script ran: the page's script marks it ready and lists
any error (a script error, a load its policy blocked) in ``#page-errors``.
``--screenshot`` gives a PNG, read here with ``zlib`` alone, in which the DAG's boxes
must show in the colour of a completed step.

Each browser gets a profile, ``HOME`` and caches of its own in a temporary folder,
removed afterwards; its process group is killed when it ends or times out. It has
no network: a proxy on a closed loopback port and a resolver that finds no name
keep every request on the machine (the page asks for none).

Without ``/usr/bin/chromium`` (``apt-get install chromium``) the browser tests skip,
unless ``STEPWIRE_REQUIRE_SERVICES=1`` (as in CI), which fails them instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stepwire_testkit import EXAMPLES, StackDir

from stepwire.run_graph import build_run_graph, planned_steps
from stepwire.run_page import write_run_page
from stepwire.runs import RunRecord

CHROMIUM = Path("/usr/bin/chromium")
TARGET = f"{EXAMPLES}/wine_pipeline.py:wine_pipeline"
STEPS = (
    "load_data",
    "split",
    "train_logistic",
    "train_ridge",
    "evaluate_logistic",
    "evaluate_ridge",
    "pick_best",
    "report",
)
COMPLETED = bytes.fromhex("2e7d32")  # stepwire.run_page's fill of a completed step
WINDOW = (1400, 1000)
BROWSER_TIMEOUT = 90


# ---------------------------------------------------------------- the browser


@dataclass(frozen=True)
class Browser:
    """Headless Chromium, one fresh process (and profile) per call."""

    binary: Path

    def _command(self, profile: Path, *args: str) -> list[str]:
        return [
            str(self.binary),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-crash-reporter",
            "--mute-audio",
            # Loopback only: any request goes to a closed local port, no name resolves.
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            *args,
        ]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs Chromium with these arguments; returns what it printed."""
        profile = Path(tempfile.mkdtemp(prefix="stepwire-chromium-"))
        env = {
            **os.environ,
            "HOME": str(profile),
            "XDG_CONFIG_HOME": str(profile / "config"),
            "XDG_CACHE_HOME": str(profile / "cache"),
        }
        process = subprocess.Popen(
            self._command(profile, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: its helpers end with it
        )
        try:
            stdout, stderr = process.communicate(timeout=BROWSER_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            stdout, stderr = process.communicate()
            pytest.fail(f"chromium did not finish in {BROWSER_TIMEOUT}s: {stderr[-2000:]}")
        finally:
            _kill_group(process.pid)
            shutil.rmtree(profile, ignore_errors=True)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def dom(self, page: Path) -> str:
        """The document of a page once it has loaded and its script ran."""
        done = self.run("--dump-dom", page.as_uri())
        assert done.returncode == 0, done.stderr[-3000:]
        assert "<html" in done.stdout, done.stderr[-3000:]
        return done.stdout

    def screenshot(self, page: Path, png: Path) -> bytes:
        """A PNG of the top of a page in a window of :data:`WINDOW`."""
        done = self.run(
            f"--screenshot={png}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--hide-scrollbars",
            page.as_uri(),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert png.is_file(), done.stderr[-3000:]
        return png.read_bytes()


def _kill_group(pid: int) -> None:
    # ProcessLookupError: every process of the group has already ended.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser() -> Browser:
    """Debian's Chromium; skips (fails with STEPWIRE_REQUIRE_SERVICES=1) without it."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = (
            f"{CHROMIUM} is not installed: the run page is tested in Debian's Chromium "
            "(apt-get install --no-install-recommends chromium)"
        )
        if os.environ.get("STEPWIRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (and STEPWIRE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(reason)
    return Browser(CHROMIUM)


# ---------------------------------------------------------------- the demo's page


@dataclass(frozen=True)
class DemoPage:
    """The demo's run as recorded, and its page."""

    stack: StackDir
    run: RunRecord
    page: Path
    logs: dict[str, str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPage:
    root = tmp_path_factory.mktemp("demo-page")
    stack = StackDir(root, orchestrator="subprocess")
    done = stack.cli(["run", TARGET], root)
    assert done.returncode == 0, done.stdout + done.stderr
    [run_name] = stack.run_names()
    run = stack.run_record(run_name)
    # The step logs the subprocess orchestrator keeps, where it keeps them today.
    folder = stack.artifacts / ".logs" / run_name
    logs = {p.stem: p.read_text(errors="replace") for p in sorted(folder.glob("*.log"))}
    page = write_run_page(run, root / "run.html", logs=logs)
    return DemoPage(stack, run, page, logs)


def _title(dom: str) -> str:
    found = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert found is not None, "the document has no title"
    return found.group(1)


def _element(dom: str, element_id: str) -> re.Match[str]:
    found = re.search(rf'<(\w+) id="{element_id}"([^>]*)>(.*?)</\1>', dom, re.S)
    assert found is not None, f"no #{element_id} in the document"
    return found


def test_the_recorded_dag_is_the_pipelines(demo: DemoPage, on_sys_path: Any) -> None:
    on_sys_path(EXAMPLES)
    from wine_pipeline import wine_pipeline  # type: ignore[import-not-found]

    planned = planned_steps(wine_pipeline.compile())
    graph = build_run_graph(demo.run)
    assert {s.name: s.upstream for s in graph.steps} == {
        name: tuple(sorted(upstream)) for name, upstream in planned.items()
    }
    assert [len(level) for level in graph.levels] == [1, 1, 2, 2, 1, 1]
    assert build_run_graph(demo.run, planned) == graph  # nothing was skipped


def test_the_demo_page_loads_without_errors_and_shows_every_step(
    demo: DemoPage, browser: Browser
) -> None:
    dom = browser.dom(demo.page)
    assert re.search(r'<html[^>]* data-page-ready="yes"', dom), "the page's script did not run"
    errors = _element(dom, "page-errors")
    assert 'data-count="0"' in errors.group(2), errors.group(3)
    assert errors.group(3) == ""
    for step in STEPS:
        assert len(re.findall(rf'<a class="node" [^>]*data-step="{step}"', dom)) == 1, step
        assert len(re.findall(rf'<a class="bar" [^>]*data-step="{step}"', dom)) == 1, step
        assert f'<details class="step" id="step-{step}" open="">' in dom
    assert dom.count('class="box st-completed"') == len(STEPS)
    assert len(re.findall(r'<path class="edge"', dom)) == sum(
        len(s.upstream) for s in build_run_graph(demo.run).steps
    )
    # The report's value, previewed from its data.json; the split's parameters.
    assert "{'best': 'logistic regression', 'accuracy': 1.0" in dom.replace("&#x27;", "'")
    assert "<code>test_fraction</code></td><td><code>0.3</code>" in dom
    for step, log in demo.logs.items():
        last = [line for line in log.splitlines() if line.strip()][-1]
        assert last.replace("'", "&#x27;") in dom or last in dom, step


def _png_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        body = png[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    channels = {2: 3, 6: 4}[color]
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels
        )
        rows.append(bytes(line if channels == 3 else _rgb(line)))
        previous = line
    return width, height, rows


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> bytearray:
    """Undoes one row's PNG filter: None, Sub, Up, Average or Paeth."""
    if kind == 0:
        return line
    if kind == 2:
        return bytearray((x + u) & 0xFF for x, u in zip(line, above, strict=True))
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + above[i]) >> 1)) & 0xFF
        else:
            up, corner = above[i], above[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            far_left, far_up, far_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
            if far_left <= far_up and far_left <= far_corner:
                predicted = left
            else:
                predicted = up if far_up <= far_corner else corner
            line[i] = (line[i] + predicted) & 0xFF
    return line


def _rgb(rgba: bytearray) -> bytearray:
    return bytearray(b for i, b in enumerate(rgba) if i % 4 != 3)


def _bands(rows: list[bytes], color: bytes) -> list[tuple[int, int, int]]:
    """Runs of rows holding a colour: ``(rows, pixels in all, most pixels in one row)``."""
    counts = [sum(row[i : i + 3] == color for i in range(0, len(row), 3)) for row in rows]
    bands, current = [], []
    for count in [*counts, 0]:
        if count:
            current.append(count)
        elif current:
            bands.append((len(current), sum(current), max(current)))
            current = []
    return bands


def test_a_screenshot_of_the_demo_page_shows_the_dag(
    demo: DemoPage, browser: Browser, tmp_path: Path
) -> None:
    png = browser.screenshot(demo.page, tmp_path / "run.png")
    assert len(png) > 20_000  # a blank 1400x1000 PNG is a few kilobytes
    width, height, rows = _png_rows(png)
    assert (width, height) == WINDOW
    colours = Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))
    assert len(colours) > 50, colours.most_common(5)
    # The DAG: the tallest green band holds eight boxes, up to four side by side
    # (1, 1, 2, 2, 1, 1 per level, drawn left to right).
    band_rows, pixels, widest = max(_bands(rows, COMPLETED), key=lambda band: band[1])
    assert band_rows >= 80, (band_rows, pixels, widest)
    assert pixels >= 8 * 3_000, (band_rows, pixels, widest)
    assert widest >= 4 * 120, (band_rows, pixels, widest)


# ---------------------------------------------------------------- escaping, in the browser

EVIL = "<script>document.title='pwned'</script>"


@pytest.fixture
def evil_page(demo: DemoPage, tmp_path: Path) -> Path:
    """The demo's run with markup in a parameter, a step name and a log."""
    first, *rest = demo.run.steps
    tampered = dataclasses.replace(first, parameters=(("note", f'"{EVIL}"'),), node=EVIL)
    run = RunRecord(demo.run.pipeline, demo.run.run_name, (tampered, *rest))
    return write_run_page(run, tmp_path / "evil.html", logs={first.step: EVIL})


def test_markup_from_the_run_stays_text_in_the_browser(browser: Browser, evil_page: Path) -> None:
    dom = browser.dom(evil_page)
    assert "pwned" not in _title(dom)
    assert 'data-count="0"' in _element(dom, "page-errors").group(2)
    assert "&lt;script&gt;document.title=" in dom
    assert re.search(r'<html[^>]* data-page-ready="yes"', dom)


def test_a_foreign_script_or_load_is_blocked_and_reported(
    browser: Browser, demo: DemoPage, tmp_path: Path
) -> None:
    # What the page's policy and error record are for: markup that escaping missed.
    injected = tmp_path / "injected.html"
    injected.write_text(
        demo.page.read_text(encoding="utf-8").replace(
            "<body>", f'<body>{EVIL}<img src="http://127.0.0.1:9/pixel.png">', 1
        ),
        encoding="utf-8",
    )
    dom = browser.dom(injected)
    assert "pwned" not in _title(dom)
    errors = _element(dom, "page-errors")
    assert 'data-count="0"' not in errors.group(2)
    assert "blocked by the page's policy: script-src" in errors.group(3).replace("&#x27;", "'")
    assert "img-src" in errors.group(3)
