"""Structured fuzz of ``stepwire args explain``: only documented outcomes, never a traceback.

Each case calls the CLI's ``main()`` in this process with an argv (``args explain``,
its options, then a step's command line), or with ``--from-file`` and a document
written for the case: the command line of a real step (planned as the ``subprocess``
orchestrator plans it, see ``bad_inputs.py``) as a JSON list, a Pod, a Job, a bare
container spec, an Argo Workflow or a stream of Jobs, in JSON or YAML, then broken:
values of the wrong type anywhere in the tree, the step's argv mutated the way
``argv_fuzz.py`` mutates command lines, the text cut or its bytes flipped, and hostile
YAML (self-referential anchors, alias trees, deep nesting, tags, non-UTF-8, BOMs,
huge documents). Generation is seeded: a case is reproduced by its seed and index
(``--case I`` prints it).

An **undeclared error** is any of:

* an exception escaping ``main()`` (``SystemExit`` with a documented code aside:
  argparse's 2 for a usage error, 0 for ``--help``);
* an exit code outside the CLI's documented ones (0, 1, 2, 64, 75);
* a Python traceback in what it printed;
* exit code 64 whose stderr is not the one ``stepwire: bad_arguments: ...`` line;
* success with ``--json`` whose output is not a JSON object.

``stdout`` is strict UTF-8, as in a UTF-8 locale other than C (``C.UTF-8`` makes
Python replace what does not encode; ``--stdout-errors surrogateescape`` models it).

Some documents are too hostile to open in this process (an alias tree whose text
is a few hundred bytes and whose expansion is gigabytes): ``--isolated`` runs those
few in child processes limited to 1 GiB of memory and 60 s, where an exception, a
traceback, running out of memory or time is an undeclared error too.

Run it::

    python tools/stress/explain_fuzz.py --count 20000
    python tools/stress/explain_fuzz.py --count 20000 --isolated
    python tools/stress/explain_fuzz.py --case 1234      # replays one case

It prints ``N cases, K undeclared errors`` (and each kind of error once, with a case
that shows it), and exits 1 when K is not 0.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argv_fuzz
from bad_inputs import Project, python_env

DOCUMENTED = {0, 1, 2, 64, 75}
ENTRYPOINT = ["python", "-m", "stepwire.entrypoints.step_entrypoint"]
STEP_ANNOTATION = "stepwire.dev/step"
SLOW_SECONDS = 10.0

# --------------------------------------------------------------------------- the documents


def pod(command: list[str], name: str = "produce") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-abc", "annotations": {STEP_ANNOTATION: name}},
        "spec": {"containers": [{"name": "step", "command": command[:3], "args": command[3:]}]},
    }


def job(command: list[str], name: str = "produce") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-job", "labels": {STEP_ANNOTATION: name}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {STEP_ANNOTATION: name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "step", "command": command[:3], "args": command[3:]}],
                },
            },
        },
    }


def container(command: list[str]) -> dict[str, Any]:
    return {"name": "step", "image": "img:1", "command": command[:3], "args": command[3:]}


def workflow(commands: dict[str, list[str]]) -> dict[str, Any]:
    templates: list[dict[str, Any]] = [
        {
            "name": name.replace("_", "-"),
            "metadata": {"annotations": {STEP_ANNOTATION: name}},
            "container": container(command),
        }
        for name, command in commands.items()
    ]
    templates.append({"name": "main", "dag": {"tasks": [{"name": n} for n in commands]}})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "p-"},
        "spec": {"entrypoint": "main", "templates": templates},
    }


def _odd_value(rng: random.Random, depth: int = 0) -> Any:
    """A value of any YAML type, some of them large or deep."""
    kind = rng.randrange(14 if depth < 3 else 9)
    simple: list[Any] = [
        None,
        True,
        0,
        -1,
        10**40,
        1.5,
        float("inf"),
        "",
        "x" * rng.choice([1, 300, 70_000]),
    ]
    if kind < len(simple):
        return simple[kind]
    if kind == 9:
        return [_odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 10:
        return {str(rng.randrange(5)): _odd_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if kind == 11:
        nested: Any = "deep"
        for _ in range(rng.choice([50, 300])):
            nested = [nested]
        return nested
    if kind == 12:
        return rng.choice(["\udcff", "é\u2028漢字😀", "\x00", "{{workflow.name}}", "--"])
    return [rng.choice(["python", "-m", "--json", "--pipeline_json"]) for _ in range(3)]


def _paths(tree: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node of a JSON-like tree (the root excluded)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*path, key)
            yield from _paths(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield (*path, index)
            yield from _paths(value, (*path, index))


def _break_tree(rng: random.Random, tree: Any) -> Any:
    """The tree with one to three nodes replaced, deleted or given odd siblings."""
    tree = copy.deepcopy(tree)
    for _ in range(rng.randrange(1, 4)):
        paths = [p for p in _paths(tree) if len(p) < 12]
        if not paths:
            return _odd_value(rng)
        path = rng.choice(paths)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        operation = rng.randrange(4)
        if operation == 0:
            parent[path[-1]] = _odd_value(rng)
        elif operation == 1 and isinstance(parent, dict):
            del parent[path[-1]]
        elif operation == 2 and isinstance(parent, list):
            parent.insert(path[-1], _odd_value(rng))
        elif isinstance(parent, dict):
            parent[rng.choice(["command", "args", "spec", "kind", "template", "containers"])] = (
                _odd_value(rng)
            )
    return tree


def _break_argv(rng: random.Random, command: list[str]) -> list[str]:
    """The step's command with its arguments mutated as ``argv_fuzz`` mutates them."""
    head, args = command[:3], command[3:]
    return [*head, *argv_fuzz._mutate(rng, args)]  # the same mutations


def _serialise(rng: random.Random, documents: list[Any]) -> bytes:
    """The documents as JSON, block YAML or flow YAML (a stream when several)."""
    style = rng.randrange(3)
    try:
        if style == 0 and len(documents) == 1:
            return json.dumps(documents[0], ensure_ascii=rng.random() < 0.5).encode(
                "utf-8", "surrogatepass"
            )
        flow = style == 2
        text = yaml.safe_dump_all(documents, default_flow_style=flow, allow_unicode=True)
        return text.encode("utf-8", "surrogatepass")
    except (ValueError, yaml.YAMLError, RecursionError, OverflowError):
        return repr(documents).encode("utf-8", "surrogatepass")


def _corrupt_text(rng: random.Random, data: bytes) -> bytes:
    """Bytes cut, flipped, or with junk put in."""
    if not data:
        return data
    operation = rng.randrange(5)
    at = rng.randrange(len(data))
    if operation == 0:
        return data[:at]
    if operation == 1:
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if operation == 2:
        junk = rng.choice(
            [b"\xff", b"\x00", b"\t", b"&a ", b"*a", b"!!binary ", b"? ", b"\xed\xa0\x80"]
        )
        return data[:at] + junk + data[at:]
    if operation == 3:
        return rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"%YAML 1.1\n---\n"]) + data
    return data + rng.choice([b"\n---\n", b"\n...\n", b"\n- x\n", b"\x00"])


# Hostile YAML texts, each small enough for this process.
HOSTILE: list[bytes] = [
    b"a: &a\n  spec:\n    template: *a\n",
    b"&a [*a]\n",
    b"&a {spec: *a}\n",
    b"&a {spec: {template: *a}, kind: Job}\n",
    b"a: &a {<<: *a}\n",
    b"kind: Workflow\nspec: &s {templates: [{container: {command: [x]}, name: *s}]}\n",
    b"kind: Workflow\nspec: {templates: &t [*t, {name: x, container: *t}]}\n",
    b"[" * 5000 + b"]" * 5000,
    b"{a: " * 3000 + b"1" + b"}" * 3000,
    b"".join(b"  " * i + b"- \n" for i in range(2000)),
    b"\xff\xfe k\x00i\x00n\x00d\x00",
    b"\xfe\xff\x00k\x00i\x00n\x00d",
    b"kind: Pod\xc3\x28\n",
    b"command: [\xed\xa0\x80]\n",
    b"key: [unclosed\n",
    b"\tkind: Pod\n",
    b"kind: !!python/object/apply:os.system [echo hi]\n",
    b"kind: !foo bar\n",
    b"command: !!binary aGVsbG8=\nargs: []\n",
    b"command: !!set {a, b}\n",
    b"command: !!omap [{a: 1}]\n",
    b"? [a, b]\n: c\n",
    b"command: [a]\ncommand: [b]\n",
    b"command: 2001-12-14t21:59:43.10-05:00\n",
    b"args: [.nan, .inf, 0x1F, 0o17, 1_000]\n",
    b"%TAG ! tag:example.com,2000:\n--- !foo\ncommand: [x]\n",
    b"--- >\n  folded\n--- |\n  literal\n",
    b"",
    b"---\n",
    b"...\n",
    b"null\n",
    b"[]\n",
    b'["python", "-m", "stepwire.entrypoints.step_entrypoint"]\n',
    b"[1, 2, 3]\n",
    b'{"spec": {"containers": []}}\n',
    b'{"spec": {"containers": [5]}}\n',
    b'{"spec": {"containers": "x"}}\n',
    b'{"spec": {"template": null}}\n',
    b'{"kind": "Workflow", "spec": {"templates": {"a": 1}}}\n',
    b'{"kind": "Workflow", "spec": []}\n',
    b'{"kind": "Workflow", "spec": {"templates": [{"container": []}]}}\n',
    b'{"command": 5, "args": {"a": 1}}\n',
    b'{"command": ["python"], "args": [null]}\n',
    b'{"metadata": [], "spec": {"containers": [{"command": ["x"]}]}}\n',
    b'{"metadata": {"annotations": "x", "name": {"a": [1]}}, "command": ["x"]}\n',
    b"- " + b"x" * 300_000 + b"\n",
]


def _alias_tree(levels: int) -> bytes:
    """An Argo Workflow whose template's name is a tree of aliases 9 wide, ``levels`` deep."""
    lines = ["kind: Workflow", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    lines += [
        "spec:",
        "  templates:",
        f"    - name: *l{levels - 1}",
        "      container: {command: [python, -m, stepwire.entrypoints.step_entrypoint]}",
    ]
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One call of ``main()``: its argv, and the file it reads, if any."""

    argv: list[str]
    file: bytes | None = None
    kind: str = ""


@dataclass
class Material:
    """What the cases are made of: real commands, and where files go."""

    commands: dict[str, list[str]]
    folder: Path
    referenced: list[str] = field(default_factory=list)  # a command by reference

    @property
    def file(self) -> Path:
        return self.folder / "spec.yaml"


def _explain_options(rng: random.Random, names: Sequence[str]) -> list[str]:
    options: list[str] = []
    if rng.random() < 0.4:
        options.append("--json")
    if rng.random() < 0.15:
        options += ["--step", rng.choice([*names, "", "x" * 10_000, "\udcff", "-"])]
    if rng.random() < 0.03:
        options.append(rng.choice(["--json", "--from-file", "--step", "--help", "-h", "--x"]))
    return options


def _argv_case(rng: random.Random, material: Material) -> Case:
    names = list(material.commands)
    command = (
        material.referenced
        if material.referenced and rng.random() < 0.15
        else material.commands[rng.choice(names)]
    )
    roll = rng.random()
    if roll < 0.55:
        words = _break_argv(rng, command)
        kind = "argv mutated"
    elif roll < 0.75:
        words = list(command)
        kind = "argv valid"
    else:
        words = next(argv_fuzz.command_lines(rng.randrange(10**9), 1))
        kind = "argv junk"
    prefix = rng.choice([[], ["--"], [], ENTRYPOINT, ["--", *ENTRYPOINT]])
    body = words[3:] if words[:3] == ENTRYPOINT or words[:1] == [command[0]] else words
    if prefix == [] and rng.random() < 0.2:
        body = words  # with the interpreter's own path in front
    return Case(["args", "explain", *_explain_options(rng, names), *prefix, *body], None, kind)


def _file_case(rng: random.Random, material: Material) -> Case:
    names = list(material.commands)
    name = rng.choice(names)
    command = list(material.commands[name])
    if rng.random() < 0.5:
        command = _break_argv(rng, command)
    shape = rng.randrange(7)
    documents: list[Any]
    if shape == 0:
        documents, kind = [command], "file argv list"
    elif shape == 1:
        documents, kind = [pod(command, name)], "file pod"
    elif shape == 2:
        documents, kind = [job(command, name)], "file job"
    elif shape == 3:
        documents, kind = [container(command)], "file container"
    elif shape == 4:
        documents, kind = [workflow(material.commands)], "file workflow"
    elif shape == 5:
        documents = [job(c, n) for n, c in material.commands.items()]
        kind = "file job stream"
    else:
        return Case(_file_argv(rng, material, names), rng.choice(HOSTILE), "file hostile")
    if rng.random() < 0.6:
        documents = [_break_tree(rng, d) for d in documents]
        kind += ", tree broken"
    data = _serialise(rng, documents)
    if rng.random() < 0.25:
        data = _corrupt_text(rng, data)
        kind += ", text corrupted"
    return Case(_file_argv(rng, material, names), data, kind)


def _file_argv(rng: random.Random, material: Material, names: Sequence[str]) -> list[str]:
    return ["args", "explain", *_explain_options(rng, names), "--from-file", str(material.file)]


def _odd_file_case(rng: random.Random, material: Material) -> Case:
    """A ``--from-file`` that is no regular file (or none at all), or is too large."""
    choices = [
        str(material.folder / "missing.yaml"),
        str(material.folder),
        "/dev/null",
        "/dev/zero",
        str(material.folder / "loop"),
        "",
        "\udcff.yaml",
        str(material.folder / "huge.yaml"),
    ]
    return Case(["args", "explain", "--from-file", rng.choice(choices)], None, "file odd path")


def generate(seed: int, index: int, material: Material) -> Case:
    """The case ``index`` of a seed (each case has a generator of its own)."""
    rng = random.Random(f"{seed}:{index}")
    roll = rng.random()
    if roll < 0.4:
        return _argv_case(rng, material)
    if roll < 0.97:
        return _file_case(rng, material)
    return _odd_file_case(rng, material)


# --------------------------------------------------------------------------- running one case


@dataclass
class Outcome:
    """What one call did, and what about it is undeclared."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float
    errors: list[str]


def _exit_code(value: object) -> int | None:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return None


def call_main(argv: list[str], stdout_errors: str = "strict") -> Outcome:
    """Calls the CLI's ``main()`` with its output captured as a process's would be."""
    from stepwire.cli import main

    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors=stdout_errors, write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace")
    errors: list[str] = []
    code: int | None = None
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:
            code = _exit_code(stop.code)
            if code not in (0, 2):
                errors.append(f"SystemExit({stop.code!r})")
        except BaseException as error:  # an undeclared error, whatever it is
            frames = traceback.extract_tb(error.__traceback__)
            where = next(
                (
                    f"{Path(f.filename).name}:{f.lineno}"
                    for f in reversed(frames)
                    if "stepwire" in f.filename
                ),
                "?",
            )
            errors.append(f"{type(error).__name__} escaped main() at {where}: {error!s:.160}")
        with contextlib.suppress(Exception):
            out.flush()
            err.flush()
    seconds = time.perf_counter() - start
    stdout = out_bytes.getvalue().decode("utf-8", "replace")
    stderr = err_bytes.getvalue().decode("utf-8", "replace")
    if code is not None and code not in DOCUMENTED:
        errors.append(f"exit code {code}")
    if "Traceback (most recent call last)" in stdout + stderr:
        errors.append("a traceback in the output")
    if code == 64:
        lines = stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("stepwire: bad_arguments: "):
            errors.append(f"64 with stderr of {len(lines)} lines, not one bad_arguments line")
    if code == 0 and "--json" in argv[:6] and "--help" not in argv and "-h" not in argv:
        try:
            parsed = json.loads(stdout)
            if not isinstance(parsed, dict):
                errors.append("--json printed JSON that is not an object")
        except ValueError:
            errors.append("--json printed what is not JSON")
    return Outcome(code, stdout, stderr, seconds, errors)


def run_case(case: Case, material: Material, stdout_errors: str) -> Outcome:
    if case.file is not None:
        material.file.write_bytes(case.file)
    return call_main(case.argv, stdout_errors)


# --------------------------------------------------------------------------- the isolated documents

ISOLATED_SCRIPT = textwrap.dedent(
    """
    import resource
    import sys

    limit = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
    from stepwire.cli import main

    sys.exit(main(["args", "explain", "--from-file", sys.argv[1]]))
    """
)


def isolated_documents() -> dict[str, bytes]:
    """Documents that only a process with limits may read."""
    return {
        "alias tree 9 x 9 levels in a template name (561 bytes)": _alias_tree(9),
        "alias tree 9 x 10 levels in a template name": _alias_tree(10),
        "file of 4 MiB + 1 byte": b" " * (4 * 1024 * 1024 + 1),
        "file of 4 MiB: a flow list of 1.4 M numbers": b"[" + b"1," * 1_400_000 + b"1]",
    }


def run_isolated(folder: Path, timeout: float = 120) -> list[tuple[str, str]]:
    """Runs each isolated document in a limited child process; the undeclared errors."""
    script = folder / "isolated.py"
    script.write_text(ISOLATED_SCRIPT)
    found = []
    for name, data in isolated_documents().items():
        path = folder / "isolated.yaml"
        path.write_bytes(data)
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, str(script), str(path)],
                capture_output=True,
                timeout=timeout,
                check=False,
                env=python_env(),
            )
            code: int | None = proc.returncode
            text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            code, text = None, ""
        seconds = time.monotonic() - start
        problem = ""
        last = (text.strip().splitlines() or ["(nothing printed)"])[-1]
        if code is None:
            problem = f"no end within {timeout:g} s"
        elif code not in DOCUMENTED:
            problem = f"exit {code} ({last[:120]})"
        elif "Traceback (most recent call last)" in text:
            problem = f"a traceback, exit {code}: {last[:160]}"
        found.append((f"{name}: exit {code}, {seconds:.1f}s", problem))
    return found


# --------------------------------------------------------------------------- the whole run


def make_material(root: Path) -> Material:
    """Plans the real pipeline once; prepares the odd paths and a by-reference command."""
    project = Project.create(root / "project")
    commands = {name: cmd for name, cmd in project.commands.items() if len(name) < 100}
    folder = root / "files"
    folder.mkdir()
    os.symlink(folder / "loop", folder / "loop")
    (folder / "huge.yaml").write_bytes(b"#" * (4 * 1024 * 1024 + 10))
    material = Material(commands, folder)
    material.referenced = _by_reference(commands["produce"], root / "store" / "artifacts")
    return material


def _by_reference(command: list[str], artifacts: Path) -> list[str]:
    """The command with its IR stored by reference in the fuzz process's artifact store."""
    import base64
    import hashlib

    index = command.index("--pipeline_json")
    payload = base64.b64decode(command[index + 1])
    digest = hashlib.sha256(payload).hexdigest()
    folder = artifacts / ".references"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / digest).write_bytes(payload)
    return [*command[: index + 1], f"ref:sha256:{digest}:{folder / digest}", *command[index + 2 :]]


@dataclass
class Report:
    """The figures of one run."""

    cases: int = 0
    undeclared: int = 0
    codes: Counter[int | None] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, tuple[int, str]] = field(default_factory=dict)
    signatures: Counter[str] = field(default_factory=Counter)
    slowest: tuple[float, int] = (0.0, -1)
    slow: int = 0
    isolated: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_undeclared(self) -> int:
        return self.undeclared + sum(1 for _, problem in self.isolated if problem)


@contextlib.contextmanager
def fuzz_environment(root: Path) -> Iterator[None]:
    """A stack of the fuzz's own for the CLI (where references are read), restored after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("STEPWIRE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(
        STEPWIRE_CONFIG="",
        STEPWIRE_ARTIFACT_STORE=str(root / "store" / "artifacts"),
        STEPWIRE_METADATA_URI=str(root / "store" / "metadata.db"),
    )
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("STEPWIRE_")]:
            del os.environ[key]
        os.environ.update(saved)


def fuzz(
    count: int,
    seed: int,
    *,
    start: int = 0,
    isolated: bool = False,
    stdout_errors: str = "strict",
    root: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Report:
    """Runs ``count`` cases of a seed (and the isolated documents if asked).

    Args:
        count: How many cases.
        seed: The seed.
        start: The index of the first case.
        isolated: Also run the isolated documents in limited child processes.
        stdout_errors: How the captured stdout encodes what UTF-8 cannot hold.
        root: The working folder (a temporary one when None).
        progress: Called with a line every 1000 cases.

    Returns:
        The figures.
    """
    from stepwire import constants

    report = Report()
    with contextlib.ExitStack() as exits:
        if root is None:
            root = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="explain-fuzz-")))
        material = make_material(root)
        exits.enter_context(fuzz_environment(root))
        saved = (constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE)
        began = time.monotonic()
        for index in range(start, start + count):
            case = generate(seed, index, material)
            outcome = run_case(case, material, stdout_errors)
            constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE = saved
            report.cases += 1
            report.codes[outcome.code] += 1
            report.kinds[case.kind.split(",")[0]] += 1
            if outcome.seconds > report.slowest[0]:
                report.slowest = (outcome.seconds, index)
            report.slow += outcome.seconds > SLOW_SECONDS
            if outcome.errors:
                report.undeclared += 1
                for error in outcome.errors:
                    what = error.split(":")[0] if "escaped" in error else error[:60]
                    signature = f"{what}; {case.kind.split(' ')[0]} cases"
                    report.examples.setdefault(signature, (index, error))
                    report.signatures[signature] += 1
            if (index - start + 1) % 1000 == 0:
                progress(
                    f"  {index - start + 1} cases, {report.undeclared} undeclared errors, "
                    f"{time.monotonic() - began:.0f} s"
                )
        if isolated:
            report.isolated = run_isolated(root)
    return report


def replay(seed: int, index: int, stdout_errors: str) -> int:
    """Prints one case, runs it and prints what it did."""
    with tempfile.TemporaryDirectory(prefix="explain-fuzz-") as folder:
        root = Path(folder)
        material = make_material(root)
        with fuzz_environment(root):
            case = generate(seed, index, material)
            print(f"case {index} of seed {seed}: {case.kind}")
            print(f"argv: {case.argv!r}"[:4000])
            if case.file is not None:
                print(f"file ({len(case.file)} bytes): {case.file[:2000]!r}")
            outcome = run_case(case, material, stdout_errors)
    print(f"exit {outcome.code} in {outcome.seconds:.3f}s")
    print(f"--- stdout\n{outcome.stdout[:3000]}\n--- stderr\n{outcome.stderr[:3000]}")
    print("undeclared: " + ("; ".join(outcome.errors) or "none"))
    return 1 if outcome.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the fuzz and prints its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--start", type=int, default=0, help="index of the first case")
    parser.add_argument("--case", type=int, help="replay this one case and print it")
    parser.add_argument(
        "--isolated", action="store_true", help="also the documents too hostile for this process"
    )
    parser.add_argument(
        "--stdout-errors",
        default="strict",
        choices=["strict", "surrogateescape", "replace"],
        help="how the captured stdout encodes what UTF-8 cannot (strict: a UTF-8 locale)",
    )
    options = parser.parse_args(argv)
    if options.case is not None:
        return replay(options.seed, options.case, options.stdout_errors)
    started = time.monotonic()
    report = fuzz(
        options.count,
        options.seed,
        start=options.start,
        isolated=options.isolated,
        stdout_errors=options.stdout_errors,
        progress=lambda line: print(line, flush=True),
    )
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items()))
    codes = ", ".join(f"{c}: {n}" for c, n in sorted(report.codes.items(), key=str))
    print(f"cases: {kinds}")
    print(f"exit codes: {codes}")
    seconds, index = report.slowest
    print(f"slowest case {index}: {seconds:.2f}s; {report.slow} above {SLOW_SECONDS:g} s")
    for signature, (index, error) in report.examples.items():
        count = report.signatures[signature]
        print(f"undeclared: {signature}: {count} cases, e.g. case {index}: {error}")
    for name, problem in report.isolated:
        print(f"isolated: {name}: {problem or 'ok'}")
    print(
        f"{report.cases} cases (seed {options.seed}), {report.undeclared} undeclared errors"
        + (
            f"; {len(report.isolated)} isolated documents, "
            f"{sum(1 for _, p in report.isolated if p)} undeclared errors"
            if options.isolated
            else ""
        )
        + f" ({time.monotonic() - started:.0f} s)"
    )
    return 0 if report.total_undeclared == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
