"""Secret step parameters: the value reaches the step and nothing else.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator (a supervised
step process per step) and the local one (in-process), SQLite ML Metadata and a
local artifact store in a temporary folder. Every file the run leaves, every
stream it prints, the step process's own command line and ``args explain`` of it
are searched for the secret.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

TOKEN = "tok-5f1e9c2a7b-secret"
KEY = 'key-\u00e9t\u00e9-0b9d4e"quoted"'

PIPELINE = textwrap.dedent(
    """
    import hashlib
    import json
    import logging
    import os
    import sys

    from stepwire.pipelines import pipeline
    from stepwire.steps import Secret, step


    @step
    def call_api(api_token: str = Secret.env("API_TOKEN")) -> int:
        dump = os.environ.get("CMDLINE_DUMP")
        if dump:
            with open("/proc/self/cmdline", "rb") as file:
                argv = [a.decode() for a in file.read().split(b"\\0") if a]
            with open(dump, "w") as file:
                json.dump(argv, file)
        print(f"stdout has {api_token}", flush=True)
        print(f"stderr has {api_token}", file=sys.stderr, flush=True)
        logging.getLogger("user").warning("logged %s", api_token)
        if os.environ.get("FAIL_WITH_TOKEN"):
            raise RuntimeError(f"the API refused token {api_token}")
        return len(api_token)


    @step
    def sign(length: int, key: str = Secret.file(os.environ["KEY_FILE"])) -> str:
        print(json.dumps({"key": key}), flush=True)  # escaped inside JSON text
        return hashlib.sha256(f"{length}:{key}".encode()).hexdigest()


    @pipeline
    def secretive(call_api, sign):
        sign(length=call_api())


    secretive_pipeline = secretive(call_api=call_api(), sign=sign())
    """
)


@pytest.fixture
def project(tmp_path: Path) -> StackDir:
    (tmp_path / "secret_pipeline.py").write_text(PIPELINE)
    key_file = tmp_path / "mounted" / "key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")  # a trailing newline, as `echo` leaves it
    return StackDir(tmp_path, orchestrator="subprocess", KEY_FILE=str(key_file))


def _run(project: StackDir, run: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    values: dict[str, str | None] = {"API_TOKEN": TOKEN, **env}
    return project.cli(
        ["run", f"{project.root}/secret_pipeline.py:secretive_pipeline", "--run-name", run],
        project.root,
        **values,
    )


def _forms(secret: str) -> list[bytes]:
    return [
        secret.encode(),
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
    ]


def _leaks(project: StackDir, *texts: str) -> list[str]:
    """Where the token or the key shows: files under the project (but the key's own) or texts."""
    found = []
    own = project.root / "mounted" / "key"
    for path in project.root.rglob("*"):
        if path.is_file() and path != own:
            data = path.read_bytes()
            found += [str(path) for s in (TOKEN, KEY) for f in _forms(s) if f in data]
    for text in texts:
        found += [f"text: {text[:200]!r}" for s in (TOKEN, KEY) if s in text]
    return found


@pytest.mark.parametrize("warm", ["1", "0"])
def test_a_secret_reaches_the_step_and_nowhere_else(project: StackDir, warm: str) -> None:
    dump = project.root / "argv.json"
    proc = _run(project, "r1", CMDLINE_DUMP=str(dump), STEPWIRE_WARM_PROCESSES=warm)
    assert proc.returncode == 0, explain(proc)

    assert project.output("r1", "call_api", int) == len(TOKEN)
    expected = hashlib.sha256(f"{len(TOKEN)}:{KEY}".encode()).hexdigest()
    assert project.output("r1", "sign", str) == expected

    argv = json.loads(dump.read_text())
    texts = [proc.stdout, proc.stderr]
    if warm == "1":
        # Forked from the warm parent: /proc shows the parent's command line, and
        # the step's arguments travelled over a socket.
        assert "stepwire.entrypoints.warm_parent" in argv, argv
    else:
        assert "--pipeline_json" in argv
        shown = project.cli(["args", "explain", "--from-file", str(dump)], project.root)
        assert shown.returncode == 0, explain(shown)
        assert "env:API_TOKEN" in shown.stdout  # the reference is what travels
        texts += [shown.stdout, shown.stderr]

    logs = project.artifacts / ".stepwire" / "logs" / "r1"
    call_log = (logs / "call_api.log").read_text()
    assert "stdout has ***" in call_log
    assert "stderr has ***" in call_log
    assert "logged ***" in call_log
    assert '{"key": "***"}' in (logs / "sign.log").read_text()
    assert _leaks(project, *texts) == []


def test_a_secret_in_the_steps_exception_is_redacted_everywhere(project: StackDir) -> None:
    record = project.root / "record.json"
    proc = _run(project, "r2", FAIL_WITH_TOKEN="1", STEPWIRE_FAILURE_RECORD=str(record))
    assert proc.returncode != 0, explain(proc)
    log = (project.artifacts / ".stepwire" / "logs" / "r2" / "call_api.log").read_text()
    assert "stepwire: step_failed: the API refused token ***" in log, log
    assert json.loads(record.read_text())["kind"] == "step_failed"
    assert _leaks(project, proc.stdout, proc.stderr) == []


def test_a_missing_secret_is_one_line_and_infrastructure(project: StackDir) -> None:
    proc = _run(project, "r3", API_TOKEN=None)
    assert proc.returncode != 0, explain(proc)
    log = (project.artifacts / ".stepwire" / "logs" / "r3" / "call_api.log").read_text()
    assert (
        "stepwire: infrastructure: Step 'call_api': secret parameter 'api_token' cannot be "
        "read: the environment variable API_TOKEN is not set in the step's environment"
    ) in log, log


def test_the_local_orchestrator_redacts_what_it_keeps_and_prints(project: StackDir) -> None:
    failed = _run(project, "r4", STEPWIRE_ORCHESTRATOR="local", FAIL_WITH_TOKEN="1")
    assert failed.returncode != 0, explain(failed)
    assert "the API refused token ***" in failed.stdout + failed.stderr, explain(failed)
    proc = _run(project, "r5", STEPWIRE_ORCHESTRATOR="local")
    assert proc.returncode == 0, explain(proc)
    log = project.artifacts / ".stepwire" / "logs" / "r5" / "call_api.log"
    assert "stdout has ***" in log.read_text()
    assert project.output("r5", "call_api", int) == len(TOKEN)
    assert _leaks(project, proc.stdout, proc.stderr, failed.stdout, failed.stderr) == []
