"""The ``stepwire`` command line: run pipelines and read runs from ML Metadata."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwire.exceptions import StepwireError
from stepwire.kubernetes.settings import (
    DEFAULT_ACCELERATOR_LABEL,
    DEFAULT_SECRET,
    DEFAULT_WORKDIR,
    KINDS,
)

if TYPE_CHECKING:
    from stepwire.pipelines.base_pipeline import BasePipeline

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 75
"""A store cannot be reached or used: the step entrypoint's ``infrastructure`` code."""


def _load_target(target: str) -> Any:
    """Loads ``FILE_OR_MODULE:NAME`` with pipeline execution prevented."""
    from stepwire import constants, source_utils

    location, sep, name = target.rpartition(":")
    if not sep or not location or not name:
        raise StepwireError(f"expected FILE_OR_MODULE:PIPELINE, got {target!r}")
    path = Path(location)
    if location.endswith(".py") and not path.is_file():
        raise StepwireError(f"{location!r}: no such file (from {target!r})")
    if location.endswith(".py") or path.exists():
        path = path.resolve()
        # The file's folder is the source root: its module is importable by name
        # in the step processes, and that is the name the steps are recorded with.
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    else:
        module_name = location
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing and missing != module_name:
            raise StepwireError(
                f"{location!r} imports {missing!r}, which is not installed in this "
                f"environment ({sys.executable})"
            ) from exc
        raise StepwireError(f"cannot import {location!r}: {exc}") from exc
    finally:
        constants.SHOULD_PREVENT_PIPELINE_EXECUTION = False
    constants.USER_MAIN_MODULE = source_utils.get_module_source_from_module(module)
    try:
        return getattr(module, name)
    except AttributeError:
        raise StepwireError(f"{location!r} has no attribute {name!r}") from None


def _pipeline(target: str) -> BasePipeline:
    """The pipeline ``FILE_OR_MODULE:PIPELINE`` names (a pipeline, or a factory of one)."""
    from stepwire.pipelines.base_pipeline import BasePipeline

    pipeline = _load_target(target)
    if callable(pipeline) and not isinstance(pipeline, BasePipeline):
        pipeline = pipeline()
    if not isinstance(pipeline, BasePipeline):
        raise StepwireError(f"{target!r} is not a pipeline (got {type(pipeline).__name__})")
    return pipeline


def _run(options: argparse.Namespace) -> int:
    from stepwire.orchestrators.progress import PipelineRunFailedError
    from stepwire.orchestrators.registry import get_orchestrator_class
    from stepwire.stack import get_active_stack

    pipeline = _pipeline(options.target)
    stack = get_active_stack()
    if options.orchestrator:
        stack.orchestrator = get_orchestrator_class(options.orchestrator)()
    try:
        stack.orchestrator.run(pipeline, run_name=options.run_name, stack=stack)
    except PipelineRunFailedError:
        return EXIT_FAILED
    return EXIT_OK


def _manifests(options: argparse.Namespace) -> int:
    from stepwire.kubernetes.render import manifests, to_yaml
    from stepwire.kubernetes.settings import ClusterSettings
    from stepwire.orchestrators.base_orchestrator import default_run_name
    from stepwire.stack import get_active_stack

    settings = ClusterSettings(
        image=options.image,
        namespace=options.namespace,
        secret=options.secret,
        workdir=options.workdir,
        service_account=options.service_account,
        accelerator_label=options.accelerator_label,
    )
    pipeline = _pipeline(options.target)
    run_name = options.run_name or default_run_name(pipeline.name)
    objects = manifests(
        options.kind,
        options.target,
        pipeline,
        stack=get_active_stack(),
        run_name=run_name,
        settings=settings,
        workers=options.workers,
    )
    text = to_yaml(objects)
    if options.output:
        Path(options.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(objects)} object(s) for run {run_name} to {options.output}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _logs(options: argparse.Namespace) -> int:
    from stepwire import step_logs
    from stepwire.stack import get_active_stack

    root = get_active_stack().artifact_store.path
    where = step_logs.log_uri(root, options.run, options.step, options.attempt)
    if not options.follow:
        try:
            data = step_logs.read_log(root, options.run, options.step, options.attempt)
        except FileNotFoundError:
            print(
                f"stepwire: no log of step {options.step!r} of run {options.run!r} at {where}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    if options.attempt is not None or ("://" in root and not root.startswith("file://")):
        print(
            "stepwire: --follow reads a running step's log in a local artifact store only "
            "(an object store holds it once the step ends)",
            file=sys.stderr,
        )
        return EXIT_USAGE

    def finished() -> bool:
        try:
            run = _reader().get_run(options.run)
        except KeyError:
            return False
        return any(s.step == options.step and s.status not in {"running", "new"} for s in run.steps)

    for data in step_logs.follow_log(root, options.run, options.step, finished):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def _metadata_init(options: argparse.Namespace) -> int:
    from stepwire.stack import get_active_stack

    store = get_active_stack().metadata_store
    store.initialize()
    print(f"ML Metadata is ready in the {store.describe()}.")
    return EXIT_OK


def _reader() -> Any:
    from stepwire.runs import RunReader
    from stepwire.stack import get_active_stack

    return RunReader(get_active_stack().metadata_store.open_store())


def _nothing_recorded() -> str | None:
    """Says where nothing is recorded, when the stack's SQLite file does not exist.

    Reading runs must not create a store: opening a missing SQLite file would.
    """
    from stepwire.stack_config import SQLiteConfig, load_stack_config

    store = load_stack_config().metadata_store
    if isinstance(store, SQLiteConfig) and not Path(store.path).exists():
        return f"the metadata store SQLite file {store.path} (it does not exist yet)"
    return None


def _time(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _runs_list(options: argparse.Namespace) -> int:
    missing = _nothing_recorded()
    if missing:
        print(f"no runs recorded yet in {missing}")
        return EXIT_OK
    runs = _reader().list_runs()
    if not runs:
        print(f"no runs recorded yet in {_store_description()}")
        return EXIT_OK
    print(f"{'RUN':<48} {'PIPELINE':<24} {'STATUS':<10} {'STEPS':>5}  STARTED")
    for run in runs:
        print(
            f"{run.run_name:<48} {run.pipeline:<24} {run.status:<10} {len(run.steps):>5}  "
            f"{_time(run.start)}"
        )
    return EXIT_OK


def _store_description() -> str:
    from stepwire.stack import get_active_stack

    return f"the metadata store {get_active_stack().metadata_store.describe()}"


def _runs_show(options: argparse.Namespace) -> int:
    missing = _nothing_recorded()
    if missing:
        print(f"stepwire: no run named {options.run!r} in {missing}", file=sys.stderr)
        return EXIT_FAILED
    try:
        run = _reader().get_run(options.run)
    except KeyError as exc:
        print(f"stepwire: {exc.args[0]}", file=sys.stderr)
        return EXIT_FAILED
    from stepwire.run_graph import TextStyle, render_run_graph

    print(render_run_graph(run, style=TextStyle.for_stream(sys.stdout)), end="")
    if options.html:
        from stepwire.run_page import write_run_page

        path = write_run_page(run, options.html, logs=_log_tails(run))
        print(f"run page: {path}")
    return EXIT_OK


def _log_tails(run: Any, lines: int = 200) -> dict[str, str]:
    """The end of each step's log as kept in the artifact store, for the run page."""
    from stepwire import step_logs
    from stepwire.stack import get_active_stack

    root = get_active_stack().artifact_store.path
    tails = {}
    for step in run.steps:
        try:
            data = step_logs.read_log(root, run.run_name, step.step)
        except (OSError, ValueError):
            continue
        text = data.decode("utf-8", errors="replace")
        tails[step.step] = "\n".join(text.splitlines()[-lines:])
    return tails


def _runs_output(options: argparse.Namespace) -> int:
    import json

    from stepwire.outputs import OutputNotFoundError, load_output

    try:
        value = load_output(options.run, options.step, options.output)
    except OutputNotFoundError as exc:
        print(f"stepwire: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=True))
    except (TypeError, ValueError):  # not a JSON value: numpy arrays, models...
        print(repr(value))
    return EXIT_OK


def _args_explain(options: argparse.Namespace) -> int:
    from stepwire.entrypoints import codec
    from stepwire.entrypoints.exit_codes import ExitCode
    from stepwire.explain import (
        ExplainInputError,
        argv_from_file,
        explain,
        render,
        strip_command,
    )

    try:
        if options.from_file:
            argv = argv_from_file(Path(options.from_file), options.step)
        else:
            words = list(options.argv)
            argv = strip_command(words[1:] if words[:1] == ["--"] else words)
        explanation = explain(argv, _reference_reader())
    except (ExplainInputError, codec.ArgumentError) as exc:
        print(f"stepwire: bad_arguments: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_ARGUMENTS)
    import dataclasses
    import json

    text = (
        json.dumps(dataclasses.asdict(explanation), ensure_ascii=False, indent=2)
        if options.json
        else render(explanation)
    )
    # A decoded argv may hold what no encoding can print (a lone surrogate from
    # bytes that were not UTF-8): shown replaced, never a crash.
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, errors="replace").decode(encoding))
    return EXIT_OK


def _reference_reader() -> Any:
    """Reads references from the active stack's artifact store, if there is one here."""
    from stepwire.entrypoints.references import ArtifactStoreReferences
    from stepwire.stack import get_active_stack

    def read(uri: str) -> bytes:
        data: bytes = ArtifactStoreReferences(get_active_stack().artifact_store.path).read(uri)
        return data

    return read


def _add_manifests_parser(commands: Any) -> None:
    """``stepwire manifests``: its options are the cluster settings."""
    kube = commands.add_parser(
        "manifests",
        help="write the Kubernetes objects that run a pipeline on a cluster",
        description=(
            "Writes an Argo Workflow (argo), a Job per step (jobs) or a KubeRay RayJob "
            "(rayjob) for one run of a pipeline on the active stack, which pods must be "
            "able to share (a database server, an object store). Credentials come from "
            "a Secret, never from the manifest."
        ),
    )
    kube.add_argument("kind", choices=KINDS)
    kube.add_argument("target", metavar="FILE_OR_MODULE:PIPELINE")
    kube.add_argument("--image", required=True, help="image with stepwire and the pipeline")
    kube.add_argument("--run-name", help="name of the run (default: pipeline and time)")
    kube.add_argument("--namespace", help="namespace of every object (default: kubectl's)")
    kube.add_argument(
        "--secret",
        default=DEFAULT_SECRET,
        help=f"Secret whose keys become the pods' variables (default: {DEFAULT_SECRET})",
    )
    kube.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help=f"folder in the image the pipeline imports from (default: {DEFAULT_WORKDIR})",
    )
    kube.add_argument("--service-account", help="the pods' service account")
    kube.add_argument(
        "--accelerator-label",
        default=DEFAULT_ACCELERATOR_LABEL,
        help=f"node label accelerator_type must match (default: {DEFAULT_ACCELERATOR_LABEL})",
    )
    kube.add_argument("--workers", type=int, default=1, help="RayJob worker pods (default 1)")
    kube.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    kube.set_defaults(handler=_manifests)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stepwire``.

    Returns:
        The parser.
    """
    from importlib.metadata import version

    parser = argparse.ArgumentParser(
        prog="stepwire", description=(__doc__ or "").replace("``", "").strip()
    )
    parser.add_argument("--version", action="version", version=f"stepwire {version('stepwire')}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a pipeline")
    run.add_argument("target", metavar="FILE_OR_MODULE:PIPELINE")
    run.add_argument("--orchestrator", help="orchestrator name (default: the stack's)")
    run.add_argument("--run-name", help="name of the run (default: pipeline and time)")
    run.set_defaults(handler=_run)
    runs = commands.add_parser("runs", help="read runs from ML Metadata")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    runs_commands.add_parser("list", help="list runs").set_defaults(handler=_runs_list)
    show = runs_commands.add_parser("show", help="show a run's steps and outputs")
    show.add_argument("run", metavar="RUN")
    show.add_argument(
        "--html",
        metavar="FILE",
        help="also write the run as one self-contained HTML page (DAG, timeline, steps)",
    )
    show.set_defaults(handler=_runs_show)
    output = runs_commands.add_parser(
        "output", help="print a step's output value, read with the materializer that wrote it"
    )
    output.add_argument("run", metavar="RUN")
    output.add_argument("step", metavar="STEP")
    output.add_argument("output", nargs="?", metavar="OUTPUT", help="needed if several")
    output.set_defaults(handler=_runs_output)
    logs = commands.add_parser(
        "logs",
        help="print a step's output as kept with its run in the artifact store",
    )
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("step", metavar="STEP")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="print it as it grows until the step ends"
    )
    logs.add_argument(
        "--attempt", type=int, metavar="N", help="an earlier attempt's log (default: the last)"
    )
    logs.set_defaults(handler=_logs)
    metadata = commands.add_parser("metadata", help="manage the stack's ML Metadata store")
    metadata_commands = metadata.add_subparsers(dest="metadata_command", required=True)
    metadata_commands.add_parser(
        "init",
        help="create the database and ML Metadata's schema, if missing, before any step runs",
    ).set_defaults(handler=_metadata_init)
    _add_manifests_parser(commands)
    args = commands.add_parser("args", help="read a step's command line")
    args_commands = args.add_subparsers(dest="args_command", required=True)
    explain = args_commands.add_parser(
        "explain",
        help="decode a step's command line and show what it runs",
        description=(
            "Decodes every option of a step entrypoint command line, summarises the "
            "pipeline node, resolves by-reference values when the artifact store is "
            "reachable, and prints a command that reproduces the step locally."
        ),
    )
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument(
        "--from-file",
        metavar="FILE",
        help=(
            "an argv as a JSON list, or Kubernetes objects (YAML or JSON): a pod, a job, "
            "a container spec, an Argo Workflow, or several (stepwire manifests)"
        ),
    )
    explain.add_argument(
        "--step",
        metavar="STEP",
        help="with --from-file: the step to decode, when the file holds several",
    )
    explain.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGV")
    explain.set_defaults(handler=_args_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``stepwire`` command line.

    Args:
        argv: Arguments without the program name.

    Returns:
        0 on success, 1 when the work failed, 2 for a usage error, 75 when a
        store cannot be reached or used.
    """
    from stepwire.exceptions import InfrastructureError

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["args", "explain"]:
        # A user pastes a step's arguments as they are, without a `--`: everything
        # that is not one of explain's own options is the step's argv.
        options, rest = parser.parse_known_args(argv)
        options.argv = [*rest, *options.argv]
    else:
        options = parser.parse_args(argv)
    try:
        code: int = options.handler(options)
    except InfrastructureError as exc:
        print(f"stepwire: infrastructure: {exc}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    except StepwireError as exc:
        print(f"stepwire: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
