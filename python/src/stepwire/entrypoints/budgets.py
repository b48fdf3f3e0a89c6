"""Argument size budgets per launch target, checked when a command line is built.

A launcher has limits: Linux refuses an argv element of 128 KiB or more and an
argv (with the environment) beyond about 2 MiB; AWS Batch and ECS accept at
most 8192 characters of container overrides in all. Arguments are fitted to the
budget of the configuration's launch target: values that do not fit inline are
compressed, then passed by reference through the artifact store; when nothing
fits, the error names the options and the sizes, before anything is launched.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence

from stepwire.entrypoints import codec
from stepwire.exceptions import StepwireError


@dataclasses.dataclass(frozen=True)
class ArgumentBudget:
    """The command-line limits of one launch target.

    Attributes:
        name: The preset's name.
        max_element_bytes: Largest single argv element in UTF-8 bytes, or None.
        max_total: Largest whole command (command and arguments), in the unit of
            ``measure``.
        measure: ``"argv"``: UTF-8 bytes of every element plus its terminating
            NUL, as the kernel counts; ``"json"``: characters of the command as a
            JSON array, as container-override APIs count.
        description: Where the limits come from.
    """

    name: str
    max_element_bytes: int | None
    max_total: int
    measure: str
    description: str

    def total(self, command: Sequence[str]) -> int:
        """The size of a whole command in this budget's measure.

        Args:
            command: The command and its arguments.

        Returns:
            Its size.
        """
        if self.measure == "json":
            return len(json.dumps(list(command), ensure_ascii=False, separators=(",", ":")))
        return sum(len(element.encode("utf-8")) + 1 for element in command)

    def element_fits(self, element: str) -> bool:
        """Whether one argv element is within the per-element limit."""
        if self.max_element_bytes is None:
            return True
        return len(element.encode("utf-8")) + 1 <= self.max_element_bytes


LINUX = ArgumentBudget(
    "linux",
    max_element_bytes=128 * 1024,
    max_total=2 * 1024 * 1024,
    measure="argv",
    description="Linux execve: MAX_ARG_STRLEN 128 KiB per element, ARG_MAX about 2 MiB",
)
AWS_BATCH = ArgumentBudget(
    "aws-batch",
    max_element_bytes=None,
    max_total=8192,
    measure="json",
    description="AWS Batch and ECS RunTask: 8192 characters of container overrides in all",
)
WINDOWS = ArgumentBudget(
    "windows",
    max_element_bytes=None,
    max_total=32767,
    measure="json",
    description="Windows CreateProcess: 32767 characters for the whole command line",
)
SAGEMAKER = ArgumentBudget(
    "sagemaker",
    max_element_bytes=256,
    max_total=2 * 1024 * 1024,
    measure="argv",
    description="SageMaker Pipelines: 256 characters per job argument",
)

PRESETS: dict[str, ArgumentBudget] = {
    budget.name: budget for budget in (LINUX, AWS_BATCH, WINDOWS, SAGEMAKER)
}
"""The named presets; ``aws-ecs`` is an alias of ``aws-batch``."""
PRESETS["aws-ecs"] = AWS_BATCH


class ArgumentBudgetError(StepwireError, ValueError):
    """The arguments of a step cannot fit the launch target's budget."""


def _json_flags() -> list[str]:
    return [o.flag for o in codec.OPTIONS if o.encoding is codec.Encoding.BASE64_JSON]


def fit_arguments(
    args: codec.EntrypointArgs,
    custom: Mapping[str, str],
    command: list[str],
    *,
    budget: ArgumentBudget,
    store: codec.ReferenceStore | None,
    encode: Callable[..., list[str]] = codec.encode,
) -> list[str]:
    """Encodes arguments so that ``command + arguments`` fits a budget.

    Tries, in order: the contract's thresholds (capped by the element limit);
    every JSON value compressed; then the largest values by reference, one at a
    time, until the command fits.

    Args:
        args: The contract's options.
        custom: The configuration's custom options' values, by name.
        command: The command the arguments follow (counted in the total).
        budget: The launch target's budget.
        store: Where by-reference values go.
        encode: The encoder (the generated codec's).

    Returns:
        The arguments.

    Raises:
        ArgumentBudgetError: If they cannot fit; the message names the largest
            options and their sizes, and the budget.
    """
    defaults = codec.Thresholds()
    reference_above = defaults.reference_above_bytes
    if budget.max_element_bytes is not None:
        reference_above = min(reference_above, budget.max_element_bytes - 1)
    thresholds = codec.Thresholds(
        min(defaults.compress_above_bytes, reference_above), reference_above
    )
    attempts = 0
    while True:
        argv = encode(args, custom=custom, store=store, thresholds=thresholds)
        too_long = [element for element in command + argv if not budget.element_fits(element)]
        if too_long:
            raise ArgumentBudgetError(
                f"an argument of {len(too_long[0].encode('utf-8'))} bytes "
                f"({too_long[0][:40]!r}...) exceeds the {budget.name} limit of "
                f"{budget.max_element_bytes} bytes per element ({budget.description}); "
                "only contract JSON options can travel by reference"
            )
        total = budget.total(command + argv)
        if total <= budget.max_total:
            return argv
        # The codec's own scanner reads back what its encoder wrote.
        values = codec.scan(argv, frozenset(_json_flags()))
        inline = {
            flag: len(value) for flag, value in values.items() if not value.startswith("ref:")
        }
        if not inline or attempts > 2 * len(_json_flags()):
            sizes = ", ".join(f"--{flag} {len(value)}" for flag, value in values.items())
            raise ArgumentBudgetError(
                f"the command is {total} in all, above the {budget.name} budget of "
                f"{budget.max_total} ({budget.description}), even with every JSON option "
                f"compressed or by reference; option sizes: {sizes}"
            )
        attempts += 1
        if thresholds.compress_above_bytes > 0:
            # First compress every JSON value that compression shortens.
            thresholds = codec.Thresholds(0, thresholds.reference_above_bytes)
            continue
        # Then move the largest value left inline to the artifact store.
        largest = max(inline.values())
        thresholds = codec.Thresholds(0, largest - 1)
