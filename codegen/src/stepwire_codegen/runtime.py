"""The hand-written runtime that generated codecs import, checked against the contract.

The runtime (``stepwire.codec_runtime`` by default) writes out the contract's
``ErrorKind`` and ``Encoding`` enums by hand, so that it needs nothing generated.
Generating a codec against a runtime whose enums say something else would give a
codec that raises kinds the contract does not know, or cannot raise one it
promises; so the generator compares them on every run and refuses the contract
on any difference, in one line that names the enum and the values.
"""

from __future__ import annotations

import enum
import importlib

from stepwire_codegen.errors import ContractError
from stepwire_codegen.model import Contract, EnumValue

DEFAULT_RUNTIME = "stepwire.codec_runtime"
"""Module the generated codecs import their contract-independent code from."""

_CHECKED_ENUMS = ("ErrorKind", "Encoding")


def _show(members: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in members)


def _compare(
    where: str, runtime: str, name: str, contract: tuple[EnumValue, ...], found: object
) -> None:
    expected = [(value.name, value.value) for value in contract]
    if not (isinstance(found, type) and issubclass(found, enum.Enum)):
        raise ContractError(f"{where}: enum {name}: {runtime}.{name} is not an enum")
    actual = [(member.name, member.value) for member in found]
    if actual == expected:
        return
    only_contract = [member for member in expected if member not in actual]
    only_runtime = [member for member in actual if member not in expected]
    parts = []
    if only_contract:
        parts.append(f"only in the contract: {_show(only_contract)}")
    if only_runtime:
        parts.append(f"only in {runtime}: {_show(only_runtime)}")
    if not parts:
        parts.append(
            f"same values in another order: the contract has {_show(expected)}, "
            f"{runtime} has {_show(actual)}"
        )
    raise ContractError(
        f"{where}: enum {name} differs from {runtime}.{name} ({'; '.join(parts)}); "
        "change both together"
    )


def check_runtime(contract: Contract, runtime: str) -> None:
    """Checks that the runtime's copies of the contract's enums are exact.

    Both enums must have the same members in the same order (by number in the
    contract), each named as in the contract without the enum's prefix and
    valued by that name in lower case (``ENCODING_PLAIN`` is ``PLAIN = "plain"``).

    Args:
        contract: The contract model.
        runtime: The dotted name of the runtime module.

    Raises:
        ContractError: If the runtime cannot be imported or an enum differs; one
            line naming the enum and the differing values.
    """
    where = contract.options_file or "contract"
    try:
        module = importlib.import_module(runtime)
    except ImportError as exc:
        raise ContractError(f"{where}: the runtime {runtime} cannot be imported ({exc})") from None
    values = {"ErrorKind": contract.error_kinds, "Encoding": contract.encodings}
    for name in _CHECKED_ENUMS:
        found = getattr(module, name, None)
        if found is None:
            raise ContractError(f"{where}: enum {name}: {runtime} defines no {name}")
        _compare(where, runtime, name, values[name], found)
