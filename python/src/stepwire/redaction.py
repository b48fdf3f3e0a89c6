"""Secret values this process knows, and the text and bytes they are cut out of.

A step's secret parameters are resolved inside the step process
(:mod:`stepwire.steps.secret`); each value is registered here the moment it is
read. Everything stepwire writes afterwards (the step's output as its supervisor
copies it, the failure line and record, what ML Metadata stores about the
execution) passes through :func:`redact` first, so a secret the step prints or
puts in an exception message is replaced by :data:`MASK`.

Values shorter than :data:`MIN_REDACTED_LENGTH` are not redacted: cutting every
``"1"`` out of a log would destroy it and protect nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

MASK = "***"
"""What a secret value is replaced with."""

MIN_REDACTED_LENGTH = 4
"""Shortest value, in characters, that is redacted."""

_lock = threading.Lock()
_values: set[str] = set()
_forms: tuple[bytes, ...] = ()
_listeners: list[Callable[[str], None]] = []


def _encoded_forms(value: str) -> set[bytes]:
    """The byte forms a value takes in output: as is, and escaped inside JSON text."""
    forms = {value.encode("utf-8", errors="surrogatepass")}
    for ensure_ascii in (True, False):
        escaped = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(escaped.encode("utf-8", errors="surrogatepass"))
    return forms


def register(value: str) -> None:
    """Makes ``value`` a secret of this process: it is redacted from now on.

    Args:
        value: The secret's text.
    """
    global _forms  # noqa: PLW0603 - one registry per process, by design
    if len(value) < MIN_REDACTED_LENGTH:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        forms = set(_forms) | _encoded_forms(value)
        # Longest first, so a value containing another is replaced whole.
        _forms = tuple(sorted(forms, key=len, reverse=True))
        listeners = list(_listeners)
    for listener in listeners:
        listener(value)


def add_listener(listener: Callable[[str], None]) -> None:
    """Calls ``listener`` with every value registered from now on (and those before).

    The supervised step process tells its supervisor this way, so that the
    supervisor redacts the output it copies.

    Args:
        listener: Called with each secret value.
    """
    with _lock:
        _listeners.append(listener)
        known = sorted(_values)
    for value in known:
        listener(value)


def known() -> bool:
    """Tells whether any secret is registered (the common case is none: nothing to do).

    Returns:
        True if at least one value is redacted.
    """
    return bool(_forms)


def redact_bytes(data: bytes) -> bytes:
    """Replaces every registered secret in ``data``.

    Args:
        data: Output, a log or a record, as bytes.

    Returns:
        The bytes with each secret replaced by :data:`MASK`.
    """
    forms = _forms
    for form in forms:
        if form in data:
            data = data.replace(form, MASK.encode())
    return data


def redact(text: str) -> str:
    """Replaces every registered secret in ``text``.

    Args:
        text: A message, a traceback, a property's value.

    Returns:
        The text with each secret replaced by :data:`MASK`.
    """
    if not _forms:
        return text
    return redact_bytes(text.encode("utf-8", errors="surrogatepass")).decode(
        "utf-8", errors="surrogatepass"
    )


class StreamRedactor:
    """Redacts a stream that arrives in chunks, a secret split across two included.

    The end of a chunk that could be the start of a secret is held back until the
    next chunk (or :meth:`flush`) shows whether it is.
    """

    def __init__(self) -> None:
        """Starts with nothing held."""
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """Takes the next chunk; returns what can be passed on now.

        Args:
            data: The chunk.

        Returns:
            The redacted bytes that are safe to pass on (maybe fewer than given).
        """
        forms = _forms
        if not forms and not self._held:
            return data
        data = redact_bytes(self._held + data)
        keep = _partial_suffix(data, forms)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        """Returns what is held: the stream has ended.

        Returns:
            The remaining bytes, redacted.
        """
        held, self._held = self._held, b""
        return redact_bytes(held)


def _partial_suffix(data: bytes, forms: tuple[bytes, ...]) -> int:
    """How many bytes at the end of ``data`` are the start of some secret's form."""
    longest = max((len(form) for form in forms), default=0)
    for size in range(min(len(data), longest - 1), 0, -1):
        tail = data[-size:]
        if any(form.startswith(tail) for form in forms):
            return size
    return 0
