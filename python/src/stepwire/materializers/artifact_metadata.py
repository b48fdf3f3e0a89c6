"""What the data materializers record beside an artifact's files, and check before reading.

Every artifact written by the table and model materializers has, besides its data
file, a small ``metadata.json``: the file format, the versions of the libraries that
wrote it and what the materializer needs to read it back exactly. Reading checks those
versions first, so a file from a newer library is refused with both versions named
rather than half read.

The same facts, bounded, go into the artifact's ML Metadata custom properties
(``stepwire_*``), which is what a person sees without loading the artifact: TFX
publishes the output artifacts a step's executor was handed, so properties set on
them by a materializer's ``handle_return`` reach ML Metadata with the artifact.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.exceptions import StepInterfaceError

#: File beside the data, under the artifact URI.
METADATA_FILENAME = "metadata.json"
#: Version of the layout of ``metadata.json`` and of the data files next to it.
LAYOUT_VERSION = 1
#: Prefix of the custom properties the materializers set, as for stepwire's others.
PROPERTY_PREFIX = "stepwire_"

#: Bounds of what goes into ML Metadata: enough to recognise an artifact, small
#: enough that a table with thousands of columns does not bloat every row read.
MAX_ITEMS = 50
MAX_ITEM_CHARS = 80
MAX_PROPERTY_CHARS = 4000
MAX_SUMMARY_CHARS = 200

_LEADING_NUMBERS = re.compile(r"(\d+)(?:\.(\d+))?")


class ArtifactVersionError(StepInterfaceError):
    """An artifact was written by a newer release of a library than the one installed."""


class MissingExtraError(StepInterfaceError):
    """A library a materializer needs is not installed where the step runs."""


def require(module: str, extra: str) -> ModuleType:
    """Imports a module a materializer needs, or says which extra provides it.

    Args:
        module: The module, such as ``"pyarrow.parquet"``.
        extra: The stepwire extra that installs it, such as ``"pandas"``.

    Returns:
        The module.

    Raises:
        MissingExtraError: If it cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{module} is not installed where this step runs; install stepwire[{extra}] ({e})."
        ) from e


def compatibility_key(version: str, parts: int = 1) -> tuple[int, ...]:
    """The leading release numbers that decide whether a reader can read a writer's file.

    Args:
        version: A version string such as ``"2.2.3"`` or ``"1.6.dev0"``.
        parts: How many leading numbers count: 1 for libraries that break only in
            major releases; 2 for scikit-learn, whose models are only guaranteed to
            load with the minor release that wrote them. A ``0.x`` release always
            counts its minor too, as semantic versioning has it.

    Returns:
        The numbers, compared as integers (never as strings).

    Raises:
        ValueError: If the version does not start with a number.
    """
    match = _LEADING_NUMBERS.match(version)
    if match is None:
        raise ValueError(f"cannot read a release number from version {version!r}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if parts >= 2 or major == 0:
        return (major, minor)
    return (major,)


def check_versions(
    written: Mapping[str, str],
    running: Mapping[str, str],
    *,
    parts: Mapping[str, int] | None = None,
    where: str,
) -> None:
    """Refuses an artifact written by a newer release of a library than the running one.

    Args:
        written: Library name to the version that wrote the artifact.
        running: Library name to the version installed here; only these are checked.
        parts: Library name to how many leading numbers count (default 1).
        where: Names the artifact in the message.

    Raises:
        ArtifactVersionError: Naming both versions of the first library that is newer.
    """
    for library, version in running.items():
        if library not in written:
            continue
        count = (parts or {}).get(library, 1)
        if compatibility_key(written[library], count) > compatibility_key(version, count):
            raise ArtifactVersionError(
                f"{where} was written with {library} {written[library]}, newer than the "
                f"{library} {version} installed here; install {library} "
                f">={'.'.join(map(str, compatibility_key(written[library], count)))} where "
                "the step that reads it runs."
            )


def write_metadata(uri: str, fmt: str, libraries: Mapping[str, str], **details: Any) -> None:
    """Writes ``metadata.json`` under an artifact URI.

    Args:
        uri: The artifact URI.
        fmt: The format of the data file (``"parquet"``, ``"arrow-ipc"``, ``"skops"``).
        libraries: Library name to version, of what wrote the data.
        **details: What the materializer needs to read the data back (JSON values).
    """
    document = {
        "layout": LAYOUT_VERSION,
        "format": fmt,
        "libraries": dict(libraries),
        **details,
    }
    io_utils.write_bytes(
        io_utils.join(uri, METADATA_FILENAME),
        json.dumps(document, ensure_ascii=True, sort_keys=True).encode("ascii"),
    )


def read_metadata(
    uri: str,
    running: Mapping[str, str],
    *,
    formats: Iterable[str],
    parts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Reads ``metadata.json`` and checks the layout, format and library versions.

    Args:
        uri: The artifact URI.
        running: Library name to the version installed here.
        formats: The formats the calling materializer reads.
        parts: As for :func:`check_versions`.

    Returns:
        The document.

    Raises:
        ArtifactVersionError: If a newer stepwire or library wrote the artifact.
        StepInterfaceError: If the data is in a format the materializer does not read.
        ValueError: If the file is not a metadata document (a corrupt artifact).
    """
    document = json.loads(io_utils.read_bytes(io_utils.join(uri, METADATA_FILENAME)))
    if not isinstance(document, dict) or not isinstance(document.get("layout"), int):
        raise ValueError(f"{METADATA_FILENAME} of {uri} is not a stepwire metadata document")
    if document["layout"] > LAYOUT_VERSION:
        raise ArtifactVersionError(
            f"artifact {uri} has stepwire layout {document['layout']}, newer than the "
            f"layout {LAYOUT_VERSION} this stepwire reads; upgrade stepwire where the "
            "step that reads it runs."
        )
    known = tuple(formats)
    if document.get("format") not in known:
        raise StepInterfaceError(
            f"artifact {uri} holds {document.get('format')!r} data; this materializer reads "
            f"{list(known)}."
        )
    check_versions(document.get("libraries", {}), running, parts=parts, where=f"artifact {uri}")
    return document


def clip(text: str, limit: int = MAX_ITEM_CHARS) -> str:
    """Shortens text to ``limit`` characters, marking the cut with an ellipsis.

    Args:
        text: Any text.
        limit: The longest result.

    Returns:
        The text, at most ``limit`` characters long.
    """
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def bounded_pairs(pairs: Iterable[tuple[str, str]], total: int) -> str:
    """A JSON list of ``[name, description]`` pairs, bounded in count and in size.

    Args:
        pairs: The pairs, in order (column name and type, parameter and value).
        total: How many pairs there are; when some are left out, a last
            ``["…", "N more"]`` pair says how many.

    Returns:
        JSON text of at most :data:`MAX_PROPERTY_CHARS` characters.
    """
    kept: list[list[str]] = []
    for name, description in pairs:
        if len(kept) >= MAX_ITEMS:
            break
        kept.append([clip(name), clip(description)])

    def render() -> str:
        closing = [["\u2026", f"{total - len(kept)} more"]] if len(kept) < total else []
        return json.dumps(kept + closing, ensure_ascii=False)

    text = render()
    while len(text) > MAX_PROPERTY_CHARS:
        kept.pop()
        text = render()
    return text


def record_properties(artifact: BaseArtifact, properties: Mapping[str, int | str]) -> None:
    """Sets ``stepwire_<name>`` custom properties on an artifact.

    Args:
        artifact: The artifact being written; TFX publishes its custom properties.
        properties: Name (without the prefix) to an int or a string, strings clipped
            to :data:`MAX_PROPERTY_CHARS`.
    """
    for name, value in properties.items():
        key = f"{PROPERTY_PREFIX}{name}"
        if isinstance(value, bool) or not isinstance(value, int):
            artifact.set_string_custom_property(key, clip(str(value), MAX_PROPERTY_CHARS))
        else:
            artifact.set_int_custom_property(key, value)


def libraries_json(libraries: Mapping[str, str]) -> str:
    """The ``libraries`` property: library name to version, as compact JSON.

    Args:
        libraries: Library name to version.

    Returns:
        JSON text with sorted keys.
    """
    return json.dumps(dict(libraries), sort_keys=True)
