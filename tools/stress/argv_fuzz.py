"""Generated hostile command lines for the decoder and the entrypoint's ``main()``.

Used by ``tests/unit/test_fuzz.py`` (a short run) and by ``nox -s fuzz``
(``python tools/stress/argv_fuzz.py --count 100000``). Generation is seeded,
so a failure is reproducible from its seed and index.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import sys
import time
import zlib
from collections.abc import Callable, Iterator

from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec

CONFIG = "stepwire.orchestrators.subprocess_orchestrator.SubprocessEntrypointConfiguration"

_JUNK_PIECES = [
    "",
    "-",
    "--",
    "=",
    "==",
    "e30=",
    "e30",
    "zlib:",
    "ref:",
    "ref:sha256:",
    "ref:sha256:" + "0" * 64 + ":",
    "ref:sha256:" + "a" * 64 + ":file:///etc/passwd",
    "\x00",
    "\ud800",
    "é",
    "漢字",
    "😀",
    "{",
    "[]",
    "null",
    "9" * 5000,
    "-1",
    "01",
    "4294967296",
    " ",
    "\n",
    "A" * 7,
    "_-",
]


def _base_argv() -> list[str]:
    args = codec.EntrypointArgs(
        entrypoint_config_source=CONFIG,
        main_module_source="no_such_user_module",
        step_source="no_such_user_module.Step",
        pipeline_json=json.dumps({"pipelineInfo": {"id": "p"}, "nodes": []}),
        contract_version=1,
        run_name="run-1",
    )
    args.input_artifact_sources["data"] = "pkg.artifacts.Data"
    args.materializer_sources["output"] = "pkg.materializers.M"
    return codec.encode(args)


def _json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 2**53, 2**64, 1.5, 1e300, -0.0])
    if kind == 2:
        return rng.choice(_JUNK_PIECES[:12]) + rng.choice(["x", "é", "\u2028"])
    if kind in (3, 4):
        return "".join(rng.choice('ab"\\/\t') for _ in range(rng.randrange(6)))
    if kind == 5:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["a", "b", "", "é"]): _json_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def _junk_value(rng: random.Random) -> str:
    choice = rng.randrange(7)
    if choice == 0:
        return "".join(rng.choice(_JUNK_PIECES) for _ in range(rng.randrange(1, 4)))
    if choice == 1:
        text = json.dumps(_json_value(rng))
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()
    if choice == 2:
        payload = rng.randbytes(rng.randrange(40))
        return "zlib:" + base64.b64encode(zlib.compress(payload)).decode()
    if choice == 3:
        raw = zlib.compress(json.dumps(_json_value(rng)).encode())
        return "zlib:" + base64.b64encode(raw[: rng.randrange(len(raw) + 1)]).decode()
    if choice == 4:
        return base64.b64encode(rng.randbytes(rng.randrange(30))).decode().rstrip("=")
    if choice == 5:
        return "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(12)))
    return "--" + rng.choice([*sorted(codec.FLAGS), "unknown", "x"])


def _mutate(rng: random.Random, argv: list[str]) -> list[str]:
    argv = list(argv)
    for _ in range(rng.randrange(1, 4)):
        operation = rng.randrange(8)
        index = rng.randrange(len(argv)) if argv else 0
        if operation == 0 and argv:
            del argv[index]
        elif operation == 1 and argv:
            argv.insert(index, argv[index])
        elif operation == 2 and argv:
            argv[index] = _junk_value(rng)
        elif operation == 3 and argv:
            text = argv[index]
            cut = rng.randrange(len(text) + 1)
            argv[index] = text[:cut] + rng.choice(_JUNK_PIECES) + text[cut + 1 :]
        elif operation == 4:
            argv.insert(index, "--" + rng.choice(["unknown", "future_flag", "-"]))
        elif operation == 5 and argv and argv[index].startswith("--") and index + 1 < len(argv):
            argv[index : index + 2] = [f"{argv[index]}={argv[index + 1]}"]
        elif operation == 6 and len(argv) > 1:
            other = rng.randrange(len(argv))
            argv[index], argv[other] = argv[other], argv[index]
        else:
            argv.append(_junk_value(rng))
    return argv


def command_lines(seed: int, count: int) -> Iterator[list[str]]:
    """Yields ``count`` hostile command lines from a seed.

    Args:
        seed: The random seed.
        count: How many.

    Yields:
        Argv lists (without the command).
    """
    rng = random.Random(seed)
    base = _base_argv()
    for _ in range(count):
        yield (
            _mutate(rng, base)
            if rng.random() < 0.9
            else [_junk_value(rng) for _ in range(rng.randrange(6))]
        )


def check_decoder(argv: list[str]) -> None:
    """Decodes; only the codec's documented error may escape."""
    with contextlib.suppress(codec.ArgumentError):
        codec.decode(argv, custom_options=frozenset({"attempt"}), read_reference=_no_reads)


def _no_reads(uri: str) -> bytes:
    raise PermissionError(f"fuzzing reads no references ({uri})")


def check_main(argv: list[str]) -> None:
    """Runs the entrypoint's main(); only documented failures may escape.

    The documented failures are bad arguments and user code that cannot be
    loaded: the fuzzed command lines name no importable user module, so no
    step ever runs.
    """
    from stepwire import constants
    from stepwire.entrypoints.exit_codes import FailureKind, classify
    from stepwire.entrypoints.step_entrypoint import main

    # main() sets process-wide switches, as a step process should; undo them so
    # that the fuzzing process (a test session, say) is left as it was.
    saved = (constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE)
    try:
        main(argv)
    except Exception as error:  # classified below; anything else is a bug
        if classify(error) not in {FailureKind.BAD_ARGUMENTS, FailureKind.USER_CODE_NOT_LOADABLE}:
            raise AssertionError(f"undocumented failure for {argv!r}: {error!r}") from error
        _check_failure_record(error, argv)
    else:
        raise AssertionError(f"main() accepted a command line that names no step: {argv!r}")
    finally:
        constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE = saved


def _check_failure_record(error: Exception, argv: list[str]) -> None:
    """The failure path turns the error into a bounded, valid record, whatever it says."""
    import json

    from stepwire.entrypoints import exit_codes

    kind = exit_codes.classify(error)
    data = exit_codes.failure_record(
        kind,
        exit_codes.safe_text(error),
        error_kind=getattr(getattr(error, "kind", None), "value", None),
        option=getattr(error, "flag", None),
    )
    if len(data) > exit_codes.MAX_RECORD_BYTES or json.loads(data)["kind"] != kind.value:
        raise AssertionError(f"failure record of {len(data)} bytes for {argv!r}")


def run(check: Callable[[list[str]], None], seed: int, count: int) -> int:
    """Runs a check over generated command lines; returns how many ran."""
    for index, argv in enumerate(command_lines(seed, count)):
        try:
            check(argv)
        except Exception as error:
            raise AssertionError(f"seed {seed} case {index}: {argv!r}") from error
    return count


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261126)
    options = parser.parse_args()
    for name, check in (("decode", check_decoder), ("main", check_main)):
        start = time.perf_counter()
        ran = run(check, options.seed, options.count)
        seconds = time.perf_counter() - start
        print(f"{name}: {ran} command lines, no undocumented error, {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
