"""The stack a step runs on: decided where it runs, handed across whole.

A command line built on one machine (stack A) and run where another stack (B) is
configured writes to B only. A pipeline root fixed on purpose is checked instead. The
subprocess orchestrator hands the stack of ``pipeline.run(stack=...)`` to its steps,
whatever file or variables they would otherwise find. And the configuration that
carries the stack across (``StackConfig.to_environment()`` / ``to_file()``) reads back
to itself.
"""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from stepwire_testkit import StackDir, clean_environment, explain, sqlite_store

from stepwire import constants
from stepwire.entrypoints.exit_codes import ExitCode
from stepwire.exceptions import StackConfigError
from stepwire.runs import RunReader
from stepwire.stack_config import MySQLConfig, SQLiteConfig, StackConfig, load_stack_config

MODULE = '''
"""Two steps, and a driver that runs them on a stack built in code."""

import sys
from pathlib import Path

from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def produce() -> int:
    return 2


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def handoff(produce, consume):
    consume(value=produce())


if __name__ == "__main__":
    from stepwire.artifact_store import ArtifactStore
    from stepwire.metadata_store import SQLiteMetadataStore
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessOrchestrator
    from stepwire.stack import Stack

    folder = Path(sys.argv[1])
    stack = Stack(
        orchestrator=SubprocessOrchestrator(),
        artifact_store=ArtifactStore(str(folder / "code_artifacts")),
        metadata_store=SQLiteMetadataStore(str(folder / "code.db")),
    )
    handoff(produce=produce(), consume=consume()).run(run_name="in-code", stack=stack)
'''


TIMEOUT = 180
# What every process of these tests gets: the user module importable, two steps at a time.
PROCESS_VALUES = {"STEPWIRE_MAX_PARALLEL": "2"}


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@dataclass(frozen=True)
class Project:
    root: Path
    module: Any
    pipeline: Any


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("handoff")
    (root / "handoff_mod.py").write_text(MODULE)
    sys.path.insert(0, str(root))
    saved = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "handoff_mod"
    try:
        import handoff_mod

        p = handoff_mod.handoff(produce=handoff_mod.produce(), consume=handoff_mod.consume())
        yield Project(root, handoff_mod, p)
    finally:
        constants.USER_MAIN_MODULE = saved
        sys.path.remove(str(root))
        sys.modules.pop("handoff_mod", None)


def _commands_built_on(project: Project, folder: Path, **compile_args: Any) -> dict[str, list[str]]:
    """Each step's command line, built in this process with stack A active."""
    from stepwire.artifact_store import ArtifactStore
    from stepwire.metadata_store import SQLiteMetadataStore
    from stepwire.orchestrators.subprocess_orchestrator import (
        SubprocessEntrypointConfiguration as Cfg,
    )
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessOrchestrator
    from stepwire.stack import Stack

    stack_a = Stack(
        SubprocessOrchestrator(),
        ArtifactStore(str(folder / "artifacts")),
        SQLiteMetadataStore(str(folder / "metadata.db")),
    )
    ir = project.pipeline.compile(**compile_args)
    return {
        name: Cfg.get_entrypoint_command()
        + Cfg.get_entrypoint_arguments(step=step, pb2_pipeline=ir, run_name="ab", stack=stack_a)
        for name, step in project.pipeline.steps.items()
    }


def _stack(project: Project, folder: Path) -> StackDir:
    """Stack B: where the step processes run, the user module importable."""
    return StackDir(folder, drop=("PYTHON",), PYTHONPATH=str(project.root), **PROCESS_VALUES)


def test_a_step_writes_to_the_stack_it_runs_on_not_the_one_it_was_built_on(
    project: Project, tmp_path: Path
) -> None:
    a, b = tmp_path / "A", _stack(project, tmp_path / "B")
    commands = _commands_built_on(project, a)
    for name in ("produce", "consume"):
        proc = b.run(commands[name], tmp_path, timeout=TIMEOUT)
        assert proc.returncode == 0, explain(proc)

    assert b.statuses("ab") == {"produce": "completed", "consume": "completed"}
    uris = [artifact.uri for artifact in b.store().get_artifacts()]
    assert len(uris) == 2
    assert all(uri.startswith(f"{b.artifacts}/") for uri in uris), uris
    assert all(Path(uri).exists() for uri in uris)
    assert not a.exists(), _files(a)


def test_a_fixed_pipeline_root_elsewhere_is_refused_before_the_step_runs(
    project: Project, tmp_path: Path
) -> None:
    a, b = tmp_path / "A", _stack(project, tmp_path / "B")
    commands = _commands_built_on(project, a, pipeline_root=str(a / "artifacts"))
    proc = b.run(commands["produce"], tmp_path, timeout=TIMEOUT)
    assert proc.returncode == ExitCode.BAD_ARGUMENTS, explain(proc)
    [line] = proc.stderr.splitlines()
    assert line.startswith("stepwire: bad_arguments: "), explain(proc)
    assert f"'{a / 'artifacts'}'" in line
    assert f"'{b.artifacts}'" in line
    if b.metadata.exists():
        assert b.store().get_executions() == []
    assert _files(b.root) == []
    assert not a.exists()


def test_the_subprocess_orchestrator_hands_the_stack_built_in_code_to_its_steps(
    project: Project, tmp_path: Path
) -> None:
    # The current folder has a stepwire.yaml pointing elsewhere, and the environment
    # names a third store: neither may be used.
    work = tmp_path / "work"
    work.mkdir()
    (work / "stepwire.yaml").write_text(
        yaml.safe_dump(
            {
                "artifact_store": str(tmp_path / "yaml_artifacts"),
                "metadata_store": {"type": "sqlite", "path": str(tmp_path / "yaml.db")},
            }
        )
    )
    # Not StackDir.env: that sets STEPWIRE_CONFIG="", and the stepwire.yaml must be found.
    env = clean_environment(
        "PYTHON",
        PYTHONPATH=str(project.root),
        STEPWIRE_METADATA_URI=str(tmp_path / "env.db"),
        STEPWIRE_ARTIFACT_STORE=str(tmp_path / "env_artifacts"),
        **PROCESS_VALUES,
    )
    script = str(project.root / "handoff_mod.py")
    proc = subprocess.run(
        [sys.executable, script, str(tmp_path)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, explain(proc)

    run = RunReader(sqlite_store(tmp_path / "code.db")).get_run("in-code")
    assert {s.step: s.status for s in run.steps} == {"produce": "completed", "consume": "completed"}
    uris = [a.uri for a in sqlite_store(tmp_path / "code.db").get_artifacts()]
    assert len(uris) == 2
    assert all(uri.startswith(f"{tmp_path / 'code_artifacts'}/") for uri in uris), uris
    for elsewhere in ("yaml_artifacts", "yaml.db", "env_artifacts", "env.db"):
        assert not (tmp_path / elsewhere).exists(), elsewhere
    assert not (work / ".stepwire").exists()


# --------------------------------------------------------------------------- unit


SQLITE = StackConfig(
    project_root=Path("/srv/project"),
    config_file=None,
    orchestrator="local",
    artifact_store="/srv/artifacts",
    metadata_store=SQLiteConfig("/srv/metadata.db"),
)
MYSQL = dataclasses.replace(
    SQLITE,
    orchestrator="subprocess",
    artifact_store="s3://bucket/prefix",
    metadata_store=MySQLConfig("db.internal", 3307, "mlmd", "svc", password="pw-Secret-1"),
)


def _with_yaml(folder: Path) -> Path:
    """A folder whose stepwire.yaml names other stores, to prove it is not read."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stepwire.yaml").write_text(
        "orchestrator: local\nartifact_store: other\nmetadata_store: {path: other.db}\n"
    )
    return folder


@pytest.mark.parametrize("config", [SQLITE, MYSQL], ids=["sqlite", "mysql"])
def test_unit_to_environment_reads_back_to_the_same_stack(
    tmp_path: Path, config: StackConfig
) -> None:
    env = config.to_environment()
    assert set(env) <= StackConfig.environment_names()
    # Read where a stepwire.yaml names other stores: the environment wins whole.
    loaded = load_stack_config(environ=env, cwd=_with_yaml(tmp_path / "elsewhere"))
    assert dataclasses.replace(loaded, project_root=config.project_root) == config
    assert loaded.config_file is None
    if isinstance(config.metadata_store, MySQLConfig):
        assert env["STEPWIRE_METADATA_PASSWORD"] == "pw-Secret-1"
        assert "pw-Secret-1" not in repr(config)
        assert "pw-Secret-1" not in repr(loaded)
        assert "pw-Secret-1" not in repr(config.metadata_store)


@pytest.mark.parametrize("config", [SQLITE, MYSQL], ids=["sqlite", "mysql"])
def test_unit_to_file_writes_an_owner_only_file_that_reads_back(
    tmp_path: Path, config: StackConfig
) -> None:
    path = config.to_file(tmp_path / "stepwire.yaml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_stack_config(environ={"STEPWIRE_CONFIG": str(path)}, cwd=tmp_path)
    assert loaded == dataclasses.replace(config, project_root=tmp_path, config_file=path)


def test_unit_to_file_over_an_existing_file_leaves_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "stepwire.yaml"
    path.write_text("orchestrator: local\n")
    path.chmod(0o644)
    MYSQL.to_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_unit_a_metadata_uri_with_a_mysql_type_is_an_error_naming_both() -> None:
    env = {"STEPWIRE_METADATA_URI": "/srv/metadata.db", "STEPWIRE_METADATA_TYPE": "mysql"}
    with pytest.raises(StackConfigError) as caught:
        load_stack_config(environ={**env, "STEPWIRE_CONFIG": ""}, cwd=Path("/"))
    assert "STEPWIRE_METADATA_URI" in str(caught.value)
    assert "STEPWIRE_METADATA_TYPE" in str(caught.value)


def test_unit_an_empty_stepwire_config_means_no_file(tmp_path: Path) -> None:
    folder = _with_yaml(tmp_path)
    assert load_stack_config(environ={}, cwd=folder).config_file == folder / "stepwire.yaml"
    loaded = load_stack_config(environ={"STEPWIRE_CONFIG": ""}, cwd=folder)
    assert loaded.config_file is None
    assert loaded.orchestrator == "subprocess"
    assert loaded.artifact_store == str(folder / ".stepwire" / "artifacts")
    assert loaded.metadata_store == SQLiteConfig(str(folder / ".stepwire" / "metadata.db"))


def test_unit_a_stack_built_with_relative_paths_hands_over_absolute_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwire.artifact_store import ArtifactStore
    from stepwire.metadata_store import SQLiteMetadataStore
    from stepwire.orchestrators.local_orchestrator import LocalOrchestrator
    from stepwire.stack import Stack

    monkeypatch.chdir(tmp_path)
    stack = Stack(LocalOrchestrator(), ArtifactStore("art"), SQLiteMetadataStore("md.db"))
    env = stack.to_config().to_environment()
    assert env["STEPWIRE_ARTIFACT_STORE"] == str(tmp_path.resolve() / "art")
    assert env["STEPWIRE_METADATA_URI"] == str(tmp_path.resolve() / "md.db")
    assert env["STEPWIRE_ORCHESTRATOR"] == "local"
    remote = Stack(LocalOrchestrator(), ArtifactStore("s3://b/p"), SQLiteMetadataStore("m.db"))
    assert remote.to_config().to_environment()["STEPWIRE_ARTIFACT_STORE"] == "s3://b/p"
