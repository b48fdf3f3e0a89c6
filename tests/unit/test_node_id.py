"""Where the node id comes from (contract/README.md, section 3.4), on the vectors."""

from __future__ import annotations

import json
from pathlib import Path

from stepwire.entrypoints import codec
from stepwire.entrypoints.step_runner import node_id_of, parse_pipeline
from stepwire.pipeline_ir import PipelineIndex

VALID = json.loads(
    (Path(__file__).parents[2] / "contract" / "testdata" / "valid.json").read_text()
)["cases"]


def _named_ir() -> dict:
    [case] = [c for c in VALID if c["name"] == "named_step_instance"]
    return json.loads(codec.decode(case["argv"]).args.pipeline_json)


def _node_id(ir: dict, class_name: str) -> str:
    return node_id_of(PipelineIndex(parse_pipeline(json.dumps(ir))), class_name)


def test_a_named_instance_is_the_one_node_of_its_class() -> None:
    assert _node_id(_named_ir(), "train") == "train_small"


def test_otherwise_the_node_id_is_the_class_name() -> None:
    ir = _named_ir()
    # Another class: no node of it, so the class name (and the contract's error).
    assert _node_id(ir, "evaluate") == "evaluate"
    # Two nodes of the class (a whole IR, not one step's): the class name decides.
    ir["nodes"].append(json.loads(json.dumps(ir["nodes"][0])))
    ir["nodes"][1]["pipelineNode"]["nodeInfo"]["id"] = "train_large"
    assert _node_id(ir, "train") == "train"
