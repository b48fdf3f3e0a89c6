"""What the data materializers cost: DataFrames and random forests against pickle, and idle imports.

    python tools/bench/materializers_cost.py --runs 5
    python tools/bench/materializers_cost.py --runs 5 --json /tmp/materializers.json

Three measurements in one run:

* a DataFrame of 1,000,000 rows and 10 columns (floats, integers, a categorical, a
  string column, timezone-aware timestamps, booleans) written and read by
  ``PandasMaterializer`` (Parquet, zstd) and by ``pickle`` (protocol 5) to the same
  disk, in alternating order each round;
* a fitted ``RandomForestClassifier`` (100 trees, 10,000 rows of 20 features) written
  and read by ``SklearnMaterializer`` (skops, deflate level 1) and by ``pickle``;
* the cost a step that passes no such value pays for the materializers being
  installed: the body of ``materializer_registry`` (which now holds the lazy
  built-ins and their stand-ins) executed again and again in this process, the
  extra time of registry lookups, and the import time ``python -X importtime``
  reports for that module in fresh processes. Target: under 5 ms.

For each pair the script prints the materializer's median (min-max) and the median
(min-max) of the per-round ratios to pickle, which is what compares across machines.
Write times include everything the materializer does (checks, the in-memory probe
of the first rows, metadata.json, the ML Metadata properties); read times include
the version check.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness

TARGET_MS = 5.0


def _frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = pd.array([f"value-{i:05d}" for i in range(1000)], dtype="str")
    return pd.DataFrame(
        {
            **{f"f{i}": rng.random(rows) for i in range(4)},
            "i0": rng.integers(0, 10**9, rows),
            "i1": rng.integers(0, 100, rows).astype("int32"),
            "cat": pd.Categorical.from_codes(
                rng.integers(0, 20, rows), categories=[f"c{i}" for i in range(20)]
            ),
            "text": words.take(rng.integers(0, 1000, rows)),
            "when": pd.date_range("2020-01-01", periods=rows, freq="s", tz="UTC"),
            "flag": rng.random(rows) > 0.5,
        }
    )


def _forest() -> Any:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    features, target = make_classification(n_samples=10_000, n_features=20, random_state=0)
    return RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(features, target)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def _ours(
    folder: Path, value: Any, materializer: Any, artifact_class: Any, data_type: type
) -> tuple[float, float, int]:
    artifact = artifact_class()
    artifact.uri = str(folder)
    written, _ = _timed(lambda: materializer(artifact).handle_return(value))
    read, _ = _timed(lambda: materializer(artifact).handle_input(data_type))
    size = _size(folder)
    shutil.rmtree(folder)
    return written, read, size


def _pickle(path: Path, value: Any) -> tuple[float, float, int]:
    def dump() -> None:
        with open(path, "wb") as f:
            pickle.dump(value, f, protocol=5)

    def load() -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)

    written, _ = _timed(dump)
    read, _ = _timed(load)
    size = path.stat().st_size
    path.unlink()
    return written, read, size


def _pair(
    work: Path, value: Any, materializer: Any, artifact_class: Any, data_type: type, runs: int
) -> dict[str, Any]:
    """Rounds of materializer and pickle, write then read, order alternating."""
    names = ("write", "read", "size")
    ours: dict[str, list[float]] = {name: [] for name in names}
    theirs: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs + 1):  # round 0 warms the page cache and the imports
        folder, path = work / f"artifact-{round_}", work / f"pickle-{round_}.pkl"
        if round_ % 2 == 0:
            mine = _ours(folder, value, materializer, artifact_class, data_type)
            reference = _pickle(path, value)
        else:
            reference = _pickle(path, value)
            mine = _ours(folder, value, materializer, artifact_class, data_type)
        if round_ == 0:
            continue
        for name, a, b in zip(names, mine, reference, strict=True):
            ours[name].append(a)
            theirs[name].append(b)
    result: dict[str, Any] = {}
    for name in names:
        result[name] = harness.summary(ours[name])
        result[f"pickle_{name}"] = harness.summary(theirs[name])
        result[f"{name}_ratio"] = harness.ratios(ours[name], theirs[name])
    return result


def _registry_body_cost(repeats: int) -> dict[str, Any]:
    """Seconds to execute materializer_registry's module body (compiled once)."""
    import stepwire.materializers.materializer_registry as registry

    path = registry.__file__
    code = compile(Path(path).read_text(), path, "exec")
    seconds = []
    for i in range(repeats):
        # A module of its own in sys.modules each time, as an import makes it.
        module = types.ModuleType(f"_bench_registry_{i}")
        module.__file__ = path
        sys.modules[module.__name__] = module
        start = time.perf_counter()
        exec(code, module.__dict__)
        seconds.append(time.perf_counter() - start)
        del sys.modules[module.__name__]
    return harness.summary(seconds)


class _User:
    """A type no materializer is registered for exactly: the slow lookup path."""


class _UserChild(_User):
    pass


def _lookup_cost(repeats: int) -> dict[str, Any]:
    """Extra seconds per lookup of a subclass of a registered type, lazy built-ins pending."""
    from stepwire.materializers import BuiltInMaterializer
    from stepwire.materializers.materializer_registry import (
        LAZY_BUILTINS,
        MaterializerRegistry,
    )

    plain, lazy = MaterializerRegistry(), MaterializerRegistry(LAZY_BUILTINS)
    for registry in (plain, lazy):
        registry.register_materializer_type(_User, BuiltInMaterializer)

    def per_lookup(registry: MaterializerRegistry) -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            registry[_UserChild]
        return (time.perf_counter() - start) / repeats

    extra = [per_lookup(lazy) - per_lookup(plain) for _ in range(7)]
    return harness.summary(extra)


def _importtime(runs: int) -> dict[str, Any]:
    """``-X importtime`` self time of materializer_registry in fresh processes (s)."""
    pattern = re.compile(
        r"import time:\s+(\d+) \|\s+\d+ \|\s+stepwire\.materializers\.materializer_registry$"
    )
    seconds = []
    heavy = []
    check = (
        "import sys, stepwire.materializers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas', 'pyarrow', 'polars', 'sklearn', 'skops')))"
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", check],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        heavy.extend(json.loads(done.stdout.replace("'", '"')))
        for line in done.stderr.splitlines():
            match = pattern.search(line)
            if match:
                seconds.append(int(match.group(1)) / 1e6)
    return {"self": harness.summary(seconds), "data_libraries_imported": sorted(set(heavy))}


def _ms(summary: dict[str, Any]) -> str:
    low, high = summary["min"] * 1000, summary["max"] * 1000
    return f"{summary['median'] * 1000:8.1f} ms ({low:.1f}-{high:.1f})"


def _ratio(summary: dict[str, Any]) -> str:
    return f"{summary['median']:6.2f} ({summary['min']:.2f}-{summary['max']:.2f})"


def _mib(summary: dict[str, Any]) -> str:
    return f"{summary['median'] / 2**20:8.1f} MiB"


def _print_pair(title: str, result: dict[str, Any]) -> None:
    print(title)
    for what in ("write", "read"):
        print(
            f"  {what:>5}: {_ms(result[what])}; pickle {_ms(result[f'pickle_{what}'])}; "
            f"/ pickle: {_ratio(result[f'{what}_ratio'])}"
        )
    print(
        f"   size: {_mib(result['size'])}; pickle {_mib(result['pickle_size'])}; "
        f"/ pickle: {_ratio(result['size_ratio'])}"
    )


def run(options: argparse.Namespace) -> dict[str, Any]:
    """Measures and prints; returns the figures."""
    import pandas as pd
    from sklearn.base import ClassifierMixin

    from stepwire.artifacts import DataArtifact, ModelArtifact
    from stepwire.materializers import PandasMaterializer, SklearnMaterializer

    results: dict[str, Any] = {"machine": harness.machine(), "runs": options.runs}
    with tempfile.TemporaryDirectory(prefix="stepwire-materializers-bench-") as folder:
        work = Path(folder)
        frame = _frame(options.rows)
        results["dataframe"] = _pair(
            work, frame, PandasMaterializer, DataArtifact, pd.DataFrame, options.runs
        )
        del frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forest = _forest()
        results["random_forest"] = _pair(
            work, forest, SklearnMaterializer, ModelArtifact, ClassifierMixin, options.runs
        )
    results["idle"] = {
        "registry_body": _registry_body_cost(300),
        "extra_per_lookup": _lookup_cost(2000),
        "importtime": _importtime(options.import_runs),
    }

    print(f"{options.runs} rounds (after one warm-up round); medians (min-max)")
    _print_pair(
        f"DataFrame {options.rows:,} rows x 10 columns, PandasMaterializer (Parquet, zstd) vs "
        "pickle protocol 5:",
        results["dataframe"],
    )
    _print_pair(
        "RandomForestClassifier (100 trees, 10,000 x 20), SklearnMaterializer (skops) vs "
        "pickle protocol 5:",
        results["random_forest"],
    )
    idle = results["idle"]
    body, lookup = idle["registry_body"], idle["extra_per_lookup"]
    imported = idle["importtime"]
    # A step looks a type up a handful of times (each output while compiling, again
    # in the step process); 20 is generous.
    total = body["median"] + 20 * max(lookup["median"], 0.0)
    print("Materializers installed but not used (a step passing ints):")
    print(f"  materializer_registry body executed: {_ms(body)}")
    print(
        f"  extra per registry lookup of a non-exact type: "
        f"{lookup['median'] * 1e6:.1f} us ({lookup['min'] * 1e6:.1f}-{lookup['max'] * 1e6:.1f})"
    )
    print(
        f"  -X importtime self of materializer_registry, {options.import_runs} fresh "
        f"processes: {_ms(imported['self'])}"
    )
    libraries = imported["data_libraries_imported"]
    print(
        "  data libraries imported by `import stepwire.materializers`: "
        + (", ".join(libraries) or "none")
    )
    verdict = "meets" if total * 1000 < TARGET_MS else "MISSES"
    print(
        f"  estimated cost per step (body + 20 lookups): {total * 1000:.2f} ms: {verdict} "
        f"the {TARGET_MS:.0f} ms target"
    )
    results["idle"]["estimated_per_step"] = total
    if options.json:
        harness.write_json(Path(options.json), results)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds per pair")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the DataFrame")
    parser.add_argument(
        "--import-runs", type=int, default=15, help="fresh processes for -X importtime"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    run(parser.parse_args())
