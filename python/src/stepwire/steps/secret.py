"""Secret step parameters: where a value comes from travels; the value itself never does.

A step declares a secret parameter by giving it a :class:`Secret` as its default or
its value::

    @step
    def call_api(rows: list, api_token: str = Secret.env("API_TOKEN")) -> int: ...

    call_api(api_token=Secret.file("/var/run/secrets/api/token"))

The pipeline IR, and so the step's command line, ML Metadata and ``args explain``,
holds only the reference, ``{"stepwire_secret": "env:API_TOKEN"}``. The step
process reads the value from its own environment or file system when the step
function is called, registers it for redaction (:mod:`stepwire.redaction`), and
passes the function a plain ``str``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepwire import io_utils, redaction
from stepwire.exceptions import InfrastructureError, PipelineIRError, StepInterfaceError

SECRET_KEY = "stepwire_secret"
"""The one key of a secret reference's JSON form in the pipeline IR."""

MAX_SECRET_FILE_BYTES = 65536
"""Largest secret file read, in bytes."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SOURCES = ("env", "file")


class SecretUnavailableError(InfrastructureError):
    """A secret parameter's value cannot be read where the step runs.

    The step's code is not at fault but the environment it was placed in (a
    variable or a mounted secret missing), so it is the infrastructure kind, 75.
    """


@dataclass(frozen=True)
class Secret:
    """Where a secret step parameter's value is read, inside the step process.

    Attributes:
        source: ``"env"`` (an environment variable) or ``"file"`` (a file, for
            example a Kubernetes secret volume or a Docker secret).
        name: The variable's name, or the file's absolute path.
    """

    source: str
    name: str

    def __post_init__(self) -> None:
        """Checks the reference when it is made.

        Raises:
            StepInterfaceError: If the source is unknown, the variable name is not a
                valid name, or the path is not absolute.
        """
        problem = _problem(self.source, self.name)
        if problem:
            raise StepInterfaceError(f"Secret({self.source!r}, {self.name!r}): {problem}")

    @classmethod
    def env(cls, name: str) -> Secret:
        """A secret read from an environment variable of the step process.

        Args:
            name: The variable, for example ``API_TOKEN``.

        Returns:
            The reference.
        """
        return cls("env", name)

    @classmethod
    def file(cls, path: str) -> Secret:
        """A secret read from a file where the step runs (one trailing newline dropped).

        Args:
            path: An absolute path, for example ``/var/run/secrets/api/token``.

        Returns:
            The reference.
        """
        return cls("file", path)

    def to_json(self) -> dict[str, str]:
        """The reference's form in the pipeline IR.

        Returns:
            ``{"stepwire_secret": "<source>:<name>"}``.
        """
        return {SECRET_KEY: f"{self.source}:{self.name}"}

    def describe(self) -> str:
        """Where the value comes from, for messages.

        Returns:
            For example ``the environment variable API_TOKEN``.
        """
        if self.source == "env":
            return f"the environment variable {self.name}"
        return f"the file {self.name}"

    def read(self) -> str:
        """Reads the value where this process runs, without registering it.

        Returns:
            The secret's text.

        Raises:
            SecretUnavailableError: If the variable is unset or empty, or the file
                cannot be read, is not a regular file, is too large or not UTF-8.
        """
        if self.source == "env":
            value = os.environ.get(self.name, "")
            if not value:
                raise SecretUnavailableError(
                    f"{self.describe()} is not set in the step's environment"
                )
            return value
        return _read_secret_file(self.name)

    def __repr__(self) -> str:
        return f"Secret.{self.source}({self.name!r})"


def _problem(source: str, name: str) -> str:
    """What is wrong with a reference, or the empty string."""
    if source not in _SOURCES:
        return f"the source must be one of {list(_SOURCES)}"
    if source == "env" and not _ENV_NAME.match(name):
        return "a variable's name is letters, digits and '_', not starting with a digit"
    if source == "file" and not (name.startswith("/") and "\0" not in name):
        return "a secret file's path must be absolute"
    return ""


def from_json(step_name: str, parameter: str, value: Any) -> Secret | None:
    """The secret a parameter's decoded JSON value refers to, if it is a reference.

    Args:
        step_name: For messages.
        parameter: For messages.
        value: The parameter's value as decoded from the IR.

    Returns:
        The reference, or None if the value is not one.

    Raises:
        PipelineIRError: If the value has the reference's key but not its form.
    """
    if not (isinstance(value, dict) and SECRET_KEY in value):
        return None
    text = value.get(SECRET_KEY)
    source, _, name = text.partition(":") if isinstance(text, str) else ("", "", "")
    problem = "it must be the only key" if len(value) != 1 else _problem(source, name)
    if problem:
        raise PipelineIRError(
            f"Step '{step_name}': the pipeline IR's parameter '{parameter}' is a malformed "
            f"secret reference ({problem}); recompile the pipeline"
        )
    return Secret(source, name)


def resolve(step_name: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Replaces each secret reference among a step's parameters with its value.

    Each value read is registered for redaction before it is returned.

    Args:
        step_name: For messages.
        parameters: Parameter name to its decoded value (references as :class:`Secret`).

    Returns:
        Parameter name to the value the step function gets.

    Raises:
        SecretUnavailableError: If a secret cannot be read here.
    """
    resolved = dict(parameters)
    for name, value in parameters.items():
        if isinstance(value, Secret):
            try:
                text = value.read()
            except SecretUnavailableError as e:
                raise SecretUnavailableError(
                    f"Step '{step_name}': secret parameter '{name}' cannot be read: {e}"
                ) from None
            redaction.register(text)
            resolved[name] = text
    return resolved


def _read_secret_file(path: str) -> str:
    """Reads a secret file: regular, bounded, UTF-8, never blocking on a FIFO.

    Links are followed: a Kubernetes secret volume is made of them.
    """
    try:
        data = io_utils.read_regular_file(path, MAX_SECRET_FILE_BYTES, follow_links=True)
    except io_utils.NotRegularFileError:
        raise SecretUnavailableError(f"the file {path} is not a regular file") from None
    except OSError as e:
        reason = "it does not exist" if e.errno == errno.ENOENT else e.strerror
        raise SecretUnavailableError(f"the file {path} cannot be read: {reason}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretUnavailableError(
            f"the file {path} holds more than the {MAX_SECRET_FILE_BYTES} bytes a secret may"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretUnavailableError(f"the file {path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SecretUnavailableError(f"the file {path} is empty")
    return text
