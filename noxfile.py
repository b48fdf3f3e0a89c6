"""Every task of the project: ``nox -l`` lists them, ``nox`` runs the tests.

Each session installs the workspace from the committed ``uv.lock`` into its own
environment (``uv sync --frozen``), so a fresh machine needs only Python 3.11,
nox and uv.
"""

from __future__ import annotations

import os

import nox

# The main interpreter, and every version the runtime claims (python/pyproject.toml).
PYTHON = "3.11"
PYTHONS = nox.project.python_versions(nox.project.load_toml("python/pyproject.toml"))
GENERATED = "python/src/stepwire/_gen"
TYPED_PATHS = ["python/src", "python/examples", "codegen/src", "noxfile.py"]
LINT_PATHS = ["python", "codegen", "tests", "tools", "noxfile.py"]

# uv must never fetch an interpreter: the machine's Python 3.11 is the one used.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
nox.options.default_venv_backend = "uv"
nox.options.sessions = [f"tests-{PYTHON}"]
nox.options.error_on_missing_interpreters = True


def _sync(session: nox.Session, *groups: str) -> None:
    """Installs the locked workspace (both packages and the given groups)."""
    args = ["uv", "sync", "--frozen", "--all-packages", "--no-python-downloads", "-q"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def _sync_runtime(session: nox.Session, *extras: str) -> None:
    """Installs only the locked runtime (stepwire and the given extras), no dev tools."""
    args = ["uv", "sync", "--frozen", "--package", "stepwire", "--no-python-downloads", "-q"]
    for extra in extras:
        args += ["--extra", extra]
    session.run_install(
        *args,
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Runs the test suite but the slow and stores marks (``-- -m slow`` for the slow ones)."""
    _sync(session, "dev")
    session.run("pytest", *(session.posargs or ["-m", "not slow and not stores"]))


@nox.session(python=PYTHON)
def stores(session: nox.Session) -> None:
    """Runs the tests on real MariaDB, PostgreSQL and S3 servers, which they start themselves.

    MariaDB and PostgreSQL come from Debian (``apt-get install -y mariadb-server
    postgresql``), the S3 server (SeaweedFS) from the lock. A missing server skips its
    tests, unless ``STEPWIRE_REQUIRE_SERVICES=1`` (as in CI), which fails them.
    """
    _sync(session, "dev")
    session.run("pytest", "-m", "stores", *session.posargs)


@nox.session(python=PYTHON, tags=["checks"])
def lint(session: nox.Session) -> None:
    """Checks lint and formatting with ruff."""
    _sync(session, "dev")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)


@nox.session(python=PYTHON, tags=["checks"])
def typecheck(session: nox.Session) -> None:
    """Type-checks our code, generated code included, with mypy --strict."""
    _sync(session, "dev")
    session.run("mypy", "--strict", *TYPED_PATHS)


def _codegen(session: nox.Session, out: str, *extra: str) -> None:
    session.run("python", "-m", "stepwire_codegen", "contract", out, *extra, *session.posargs)


@nox.session(python=PYTHON, default=False)
def regenerate(session: nox.Session) -> None:
    """Regenerates python/src/stepwire/_gen from the contract, from an empty folder."""
    _sync(session, "dev")
    _codegen(session, GENERATED)


@nox.session(python=PYTHON, tags=["checks"])
def codegen_check(session: nox.Session) -> None:
    """Fails, with the diff and the fixing command, if generated code has drifted."""
    _sync(session, "dev")
    # --check renders the whole tree afresh in memory (as into an empty folder)
    # and compares it file by file with the checked-in one.
    _codegen(session, GENERATED, "--check")


@nox.session(python=PYTHON, default=False)
def demo(session: nox.Session) -> None:
    """Runs the demo pipeline twice (the second run is cached), then shows the run."""
    # The runtime and the demo's data and models only: none of the development tools.
    _sync_runtime(session, "pandas", "sklearn")
    target = "python/examples/wine_pipeline.py:wine_pipeline"
    session.run("stepwire", "run", target, *session.posargs)
    session.log("Running it again: every step comes from the cache.")
    session.run("stepwire", "run", target, *session.posargs)
    session.run("stepwire", "runs", "list")
    last = str(session.run("python", "-c", _LAST_RUN, silent=True, log=False)).strip()
    session.run("stepwire", "runs", "show", last)
    session.log("What the demo computed (the report step's output):")
    session.run("stepwire", "runs", "output", last, "report")
    # A picture of the run: the DAG, a timeline, and each step's details and log.
    session.run("stepwire", "runs", "show", last, "--html", ".stepwire/run.html", silent=True)
    session.log("The run's page, for a browser: .stepwire/run.html")


# Prints the name of the newest run recorded in the default stack's ML Metadata.
_LAST_RUN = (
    "from ml_metadata import metadata_store; from stepwire.runs import RunReader; "
    "from stepwire.stack import get_active_stack; "
    "c = get_active_stack().metadata_store.get_tfx_metadata_config(); "
    "print(RunReader(metadata_store.MetadataStore(c)).list_runs()[0].run_name)"
)


@nox.session(python=PYTHON, default=False)
def fuzz(session: nox.Session) -> None:
    """Feeds 100 000 hostile command lines to the decoder and to main() (opt-in)."""
    _sync(session, "dev")
    session.run("python", "tools/stress/argv_fuzz.py", *(session.posargs or ["--count", "100000"]))


CONFORMANCE = "tests/conformance"


@nox.session(python=PYTHON, default=False)
def conformance(session: nox.Session) -> None:
    """Runs the contract vectors through the TypeScript launcher and the Python codec.

    Needs Node.js 20+ and npm: installs the launcher's packages from the committed
    lock, generates its protobuf code from contract/, compiles it, runs every vector
    through both implementations, then the cross-language end-to-end test.
    """
    _sync(session, "dev")
    session.run(
        "npm", "ci", "--no-audit", "--no-fund", f"--prefix={CONFORMANCE}/typescript", external=True
    )
    session.run("python", f"{CONFORMANCE}/ts_launcher.py")
    session.run("python", f"{CONFORMANCE}/run_conformance.py", "--no-build")
    session.run("pytest", f"{CONFORMANCE}/test_cross_language.py", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Runs the benchmark suite; rewrites BENCHMARKS.md and .json (opt-in; ``-- --quick``)."""
    _sync(session, "dev")
    # The peers (ZenML, KFP, Dagster) are installed by the suite, each in its own
    # virtual environment under .nox/bench-peers, at the versions it pins.
    session.run("python", "tools/bench/suite.py", *session.posargs)
