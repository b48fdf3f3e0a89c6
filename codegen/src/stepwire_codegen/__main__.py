"""Command line of the generator: ``stepwire-codegen [--check] CONTRACT OUT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stepwire_codegen.errors import ContractError
from stepwire_codegen.generate import Target, diff_tree, render_files, write_tree
from stepwire_codegen.runtime import DEFAULT_RUNTIME

FIX_COMMAND = "nox -s regenerate"


def main(argv: list[str] | None = None) -> int:
    """Generates the codec, or checks that the checked-in one is current.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        0 on success, 1 when ``--check`` finds drift, 2 for a contract error.
    """
    parser = argparse.ArgumentParser(prog="stepwire-codegen", description=__doc__)
    parser.add_argument("contract", type=Path, help="directory holding the .proto files")
    parser.add_argument("out", type=Path, help="output root (replaced entirely)")
    parser.add_argument("--package", default="stepwire._gen", help="Python package of OUT")
    parser.add_argument("--proto-prefix", default="stepwire", help="proto path prefix to drop")
    parser.add_argument(
        "--runtime", default=DEFAULT_RUNTIME, help="module the codecs import their runtime from"
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    options = parser.parse_args(argv)
    target = Target(options.contract, options.proto_prefix, options.package, options.runtime)
    try:
        files = render_files(target)
    except ContractError as exc:
        print(f"stepwire-codegen: {exc}", file=sys.stderr)
        return 2
    if options.check:
        diffs = diff_tree(files, options.out)
        if diffs:
            sys.stdout.write("".join(diffs))
            print(
                f"stepwire-codegen: {len(diffs)} generated file(s) differ from {options.out}; "
                f"fix with: {FIX_COMMAND}",
                file=sys.stderr,
            )
            return 1
        print(f"stepwire-codegen: {options.out} is up to date")
        return 0
    write_tree(files, options.out)
    print(f"stepwire-codegen: wrote {len(files)} files to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
