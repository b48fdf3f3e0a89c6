"""``stepwire args explain``: read a step's command line like a description of the step."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from stepwire.constants import INTERNAL_EXECUTION_PARAMETER_PREFIX
from stepwire.entrypoints import codec
from stepwire.entrypoints.step_entrypoint_configuration import (
    DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND,
)
from stepwire.kubernetes.settings import STEP_ANNOTATION

ENTRYPOINT_MODULE = DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND[-1]
REDACTED = "<redacted: sensitive>"
UNREACHABLE_PLACEHOLDER = "e30="  # base64 of `{}`: stands in for a value that cannot be fetched


class ExplainInputError(ValueError):
    """The file or argv given to ``explain`` is not a command line of a step."""


def argv_from_file(path: Path, step: str | None = None) -> list[str]:
    """Reads an argv from a JSON list or Kubernetes objects (YAML or JSON).

    A Pod, a Job (or anything with ``spec.template.spec``), a bare container spec,
    an Argo Workflow (each template with a container is a step), or several of
    them in one YAML stream (``stepwire manifests jobs``) are accepted; a
    container's ``command`` and ``args`` are joined.

    Args:
        path: The file.
        step: Which step, when the file holds several: its name (the
            ``stepwire.dev/step`` annotation) or its Kubernetes name.

    Returns:
        The arguments after the entrypoint command.

    Raises:
        ExplainInputError: If no command line can be found in it, or ``step`` names
            none of its steps, or it holds several and ``step`` is not given.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ExplainInputError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ExplainInputError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not a step spec")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExplainInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        documents = _documents(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ExplainInputError(f"{path}: cannot read it as JSON or YAML: {problem}") from None
    except RecursionError:
        raise ExplainInputError(f"{path}: nested too deeply to be a step spec") from None
    if len(documents) == 1 and _is_argv(documents[0]):
        return strip_command(documents[0])
    specs = [spec for document in documents for spec in _step_specs(document)]
    if not specs:
        raise ExplainInputError(
            f"{path}: neither a JSON list of strings nor a Kubernetes pod, job or container spec"
        )
    container = _pick(path, specs, step)
    command, args = container.get("command") or [], container.get("args") or []
    if not (isinstance(command, list) and isinstance(args, list)):
        raise ExplainInputError(f"{path}: the container's command and args are not lists")
    words = [*command, *args]
    if not all(isinstance(word, str) for word in words):
        raise ExplainInputError(f"{path}: the container's command and args are not all strings")
    return strip_command(words)


def _documents(text: str) -> list[Any]:
    """The documents in a file's text: JSON when it is JSON, else YAML.

    JSON first: an argv file and ``kubectl get -o json`` are JSON, and Python's JSON
    parser reads 4 MiB of it in a tenth of a second, where PyYAML's pure-Python
    loader took over a minute of CPU. YAML goes through libyaml's parser when PyYAML
    has it (about six times faster), its pure-Python one otherwise.
    """
    try:
        document = json.loads(text)
    except ValueError:  # not JSON (JSONDecodeError is a ValueError)
        pass
    else:
        return [] if document is None else [document]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(text, Loader=loader) if d is not None]


def _name(value: Any) -> str:
    """An object's name if it is text.

    Anything else names nothing: a number, or a tree of YAML aliases that would
    expand to gigabytes as text.
    """
    return value if isinstance(value, str) else ""


def _is_argv(document: Any) -> bool:
    return isinstance(document, list) and all(isinstance(item, str) for item in document)


def _step_names(document: Any) -> tuple[str, ...]:
    """The step's name and Kubernetes name, from ``stepwire manifests``' metadata."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    found = []
    for key in ("annotations", "labels"):
        entries = metadata.get(key) if isinstance(metadata, dict) else None
        value = entries.get(STEP_ANNOTATION) if isinstance(entries, dict) else None
        found.append(value if isinstance(value, str) else "")
    return tuple(found)


def _step_specs(document: Any) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The containers of one object, each with the names its step goes by."""
    if isinstance(document, dict) and document.get("kind") == "Workflow":
        spec = document.get("spec")
        templates = spec.get("templates") if isinstance(spec, dict) else None
        found: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        for template in templates if isinstance(templates, list) else []:
            if isinstance(template, dict) and isinstance(template.get("container"), dict):
                known = (*_step_names(template), _name(template.get("name")))
                found.append((known, template["container"]))
        return found
    container = _first_container(document)
    if container is None:
        return []
    names: tuple[str, ...] = ()
    if isinstance(document, dict):
        spec = document.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        metadata = document.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        names = (*_step_names(template), *_step_names(document), _name(name))
    return [(names, container)]


def _pick(
    path: Path, specs: list[tuple[tuple[str, ...], dict[str, Any]]], step: str | None
) -> dict[str, Any]:
    """The container of the step asked for, or the only one."""
    if step is not None:
        for names, container in specs:
            if step in names:
                return container
    elif len(specs) == 1:
        return specs[0][1]
    known = ", ".join(next((n for n in names if n), "?") for names, _ in specs)
    if step is not None:
        raise ExplainInputError(f"{path}: no step named {step!r} in it; it holds: {known}")
    raise ExplainInputError(f"{path}: holds {len(specs)} steps ({known}); name one with --step")


MAX_FILE_BYTES = 4 * 1024 * 1024
"""Largest file ``explain --from-file`` reads: a pod spec is far smaller."""

_MAX_TEMPLATE_DEPTH = 8


def _first_container(document: Any) -> dict[str, Any] | None:
    # Bounded: a YAML alias can make spec.template point back at itself.
    for _ in range(_MAX_TEMPLATE_DEPTH):
        if not isinstance(document, dict):
            return None
        if "command" in document or "args" in document:
            return document
        spec = document.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
            containers = spec["containers"]
            return containers[0] if containers and isinstance(containers[0], dict) else None
        if isinstance(spec, dict) and "template" in spec:
            document = spec["template"]
            continue
        if isinstance(document.get("containers"), list):
            containers = document["containers"]
            return containers[0] if containers and isinstance(containers[0], dict) else None
        return None
    return None


def strip_command(words: list[str]) -> list[str]:
    """Drops the command (``python -m stepwire.entrypoints.step_entrypoint``) if present.

    Args:
        words: A whole command line or just its arguments.

    Returns:
        The arguments.
    """
    if ENTRYPOINT_MODULE in words:
        return words[words.index(ENTRYPOINT_MODULE) + 1 :]
    for index, word in enumerate(words):
        if word.startswith("--"):
            return words[index:]
    return words


@dataclass
class Explanation:
    """A decoded command line, ready to show.

    Attributes:
        options: Each contract option's value as shown (redacted where sensitive).
        forms: How each JSON option travelled (inline, compressed, reference).
        unreachable: By-reference options whose payload could not be fetched, with why.
        custom: The other options, taken to be the configuration's custom options.
        pipeline: A summary of the pipeline node, when ``pipeline_json`` was readable.
        reproduce: A shell command that runs the step locally.
    """

    options: dict[str, Any]
    forms: dict[str, str]
    unreachable: dict[str, str]
    custom: dict[str, str]
    pipeline: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""


def _other_options(argv: list[str]) -> list[str]:
    """The options the contract does not know, as the codec's scanner meets them."""
    names: list[str] = []
    codec.scan(argv, codec.FLAGS, unknown=names)
    return names


def explain(argv: list[str], read_reference: codec.ReferenceReader | None) -> Explanation:
    """Decodes a command line for people.

    Args:
        argv: The arguments after the entrypoint command.
        read_reference: Fetches by-reference payloads, if they are reachable here.

    Returns:
        The explanation.

    Raises:
        ArgumentError: If the command line breaks the contract (other than an
            unreachable reference).
    """
    custom_names = [name for name in _other_options(argv) if _valid_custom(name)]
    unreachable: dict[str, str] = {}
    working = list(argv)
    while True:
        try:
            decoded = codec.decode(
                working, custom_options=frozenset(custom_names), read_reference=read_reference
            )
            break
        except codec.ArgumentError as exc:
            if exc.kind is not codec.ErrorKind.REFERENCE_UNAVAILABLE or exc.flag is None:
                raise
            # Show everything else; say which reference could not be fetched.
            unreachable[exc.flag] = str(exc).split(": ", 1)[-1]
            working = _replace_value(working, exc.flag, UNREACHABLE_PLACEHOLDER)
    options = codec.as_dict(decoded.args)
    for flag in codec.SENSITIVE_FLAGS & set(options):
        options[flag] = REDACTED
    for flag, why in unreachable.items():
        options[flag] = f"<unreachable: {why}>"
    explanation = Explanation(
        options=options,
        forms={flag: form.value for flag, form in decoded.forms.items()},
        unreachable=unreachable,
        custom=dict(decoded.custom),
    )
    if "pipeline_json" not in unreachable:
        explanation.pipeline = summarise_pipeline(decoded.args.pipeline_json)
        if not explanation.pipeline.get("error") and not explanation.pipeline.get("nodes_carried"):
            # A step's IR carries at least its own node: `e30=` ({}) is not an IR.
            raise ExplainInputError(
                "--pipeline_json: the pipeline IR carries no node (an empty IR such as "
                "e30=, base64 of {}, describes no step)"
            )
    explanation.reproduce = shlex.join(["python", "-m", ENTRYPOINT_MODULE, *argv])
    return explanation


def _valid_custom(name: str) -> bool:
    try:
        codec.check_custom_options(frozenset({name}))
    except codec.ArgumentError:
        return False
    return True


def _replace_value(argv: list[str], flag: str, value: str) -> list[str]:
    result = list(argv)
    for index, word in enumerate(result):
        if word == f"--{flag}" and index + 1 < len(result):
            result[index + 1] = value
            return result
        if word.startswith(f"--{flag}="):
            result[index] = f"--{flag}={value}"
            return result
    return result


def _parameter_value(value: Any) -> Any:
    field_value = value.get("fieldValue", {})
    if "stringValue" in field_value:
        text = field_value["stringValue"]
        try:
            return json.loads(text)
        except ValueError:
            return text
    return next(iter(field_value.values()), None) if field_value else value


def summarise_pipeline(pipeline_json: str) -> dict[str, Any]:
    """The pipeline, node, inputs, outputs, parameters and executor of an IR.

    Args:
        pipeline_json: The proto JSON of a ``tfx.orchestration.Pipeline``.

    Returns:
        A summary; ``{"error": ...}`` if the JSON is not a pipeline IR.
    """
    from stepwire._protos import Pipeline

    try:
        ir = json_format.ParseDict(json.loads(pipeline_json), Pipeline())
    except (json_format.ParseError, ValueError) as exc:
        return {"error": f"not a tfx.orchestration.Pipeline: {exc}"}
    as_dict = json_format.MessageToDict(ir)
    nodes = [n["pipelineNode"] for n in as_dict.get("nodes", []) if "pipelineNode" in n]
    summary: dict[str, Any] = {
        "pipeline": ir.pipeline_info.id,
        "nodes_carried": len(nodes),
    }
    if not nodes:
        return summary
    node = nodes[0]
    summary["node"] = node.get("nodeInfo", {}).get("id", "")
    summary["upstream"] = node.get("upstreamNodes", [])
    summary["inputs"] = {
        key: [
            f"{channel.get('producerNodeQuery', {}).get('id', '?')}.{channel.get('outputKey', '?')}"
            for channel in spec.get("channels", [])
        ]
        for key, spec in node.get("inputs", {}).get("inputs", {}).items()
    }
    summary["outputs"] = {
        key: spec.get("artifactSpec", {}).get("type", {}).get("name", "")
        for key, spec in node.get("outputs", {}).get("outputs", {}).items()
    }
    summary["parameters"] = {
        key: _parameter_value(value)
        for key, value in node.get("parameters", {}).get("parameters", {}).items()
        if not key.startswith(INTERNAL_EXECUTION_PARAMETER_PREFIX)
    }
    executors = (
        as_dict.get("deploymentConfig", {}).get("executorSpecs", {}).get(summary["node"], {})
    )
    summary["executor"] = executors.get("classPath", "")
    drivers = as_dict.get("deploymentConfig", {}).get("customDriverSpecs", {})
    if summary["node"] in drivers:
        # Shown because a step process refuses to run one (it declares none).
        summary["custom_driver"] = drivers[summary["node"]].get("classPath", "?")
    root = as_dict.get("runtimeSpec", {}).get("pipelineRoot", {})
    summary["pipeline_root"] = (
        root["fieldValue"].get("stringValue", "")
        if "fieldValue" in root
        else "bound to the step's artifact store"
    )
    return summary


def render(explanation: Explanation) -> str:
    """The explanation as text for a terminal.

    Args:
        explanation: What ``explain`` returned.

    Returns:
        Lines of text.
    """
    lines = []
    pipeline = explanation.pipeline
    if pipeline.get("node"):
        lines.append(f"step {pipeline['node']} of pipeline {pipeline['pipeline']}")
    options = explanation.options
    labels = {option.flag: option for option in codec.OPTIONS}
    for flag, value in options.items():
        if flag == "pipeline_json":
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        form = f" ({explanation.forms[flag]})" if flag in explanation.forms else ""
        late = " (late-bound)" if labels[flag].late_bound else ""
        lines.append(f"  --{flag}{form}{late}: {shown}")
    form = explanation.forms.get("pipeline_json", "")
    lines.append(f"  --pipeline_json ({form}):")
    if "pipeline_json" in explanation.unreachable:
        lines.append(f"      {options['pipeline_json']}")
    elif "error" in pipeline:
        lines.append(f"      {pipeline['error']}")
    else:
        keys = ("pipeline", "node", "executor", "custom_driver", "pipeline_root", "upstream")
        for key in (*keys, "inputs", "outputs", "parameters"):
            if key in pipeline:
                value = pipeline[key]
                shown = (
                    json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
                )
                lines.append(f"      {key}: {shown}")
    for name, value in explanation.custom.items():
        lines.append(f"  --{name} (custom option): {value}")
    if "run_name" not in options:
        lines.append("  run name: decided by the configuration class (get_run_name)")
    elif "{{" in str(options["run_name"]):
        lines.append("  run name: a placeholder the orchestration engine fills in at launch")
        lines.append("            (replace it with the run's name to reproduce the step)")
    lines.append("reproduce locally (with the same STEPWIRE_* stack variables):")
    lines.append(f"  {explanation.reproduce}")
    return "\n".join(lines)
