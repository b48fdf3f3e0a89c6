"""Jinja2 environment and the filters the templates use (registered here only)."""

from __future__ import annotations

from typing import Any

import jinja2

from stepwire_codegen.errors import ContractError


def _pystr(value: str) -> str:
    """A Python string literal for ``value`` (double-quoted, escaped)."""
    body = repr(value)
    if body.startswith("'") and '"' not in value:
        body = '"' + body[1:-1].replace("\\'", "'") + '"'
    return body


def _docstring(text: str) -> str:
    """Comment text made safe inside a triple-quoted docstring."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    # A quote right before the closing triple quote would end the string early.
    return text[:-1] + '\\"' if text.endswith('"') else text


def _oneline(text: str) -> str:
    """Comment text on one line, safe inside a docstring."""
    return _docstring(" ".join(text.split()))


def _fail(message: str) -> str:
    """Stops rendering: a template reached a case the model should have refused."""
    raise ContractError(message)


def environment() -> jinja2.Environment:
    """The generator's Jinja2 environment.

    Returns:
        An environment over the package's templates with strict undefined
        handling and whitespace control, so output bytes follow the templates.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stepwire_codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    filters: dict[str, Any] = {"pystr": _pystr, "docstring": _docstring, "oneline": _oneline}
    env.filters.update(filters)
    env.globals["fail"] = _fail
    return env
