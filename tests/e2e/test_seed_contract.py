"""The seed API's contract with configurations: what ``main()`` passed and what they read.

The seed's ``main()`` took ``--entrypoint_config_source`` off the command line with
argparse and built the configuration with the rest; a configuration read each option's
value as given from ``entrypoint_args``. Custom arguments come out in the contract's
canonical order whatever order a configuration returns them in.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stepwire_testkit import StackDir, explain

from stepwire import constants
from stepwire.entrypoints import codec

SEEDMOD = '''
"""A user module whose configuration has custom options."""

from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def produce(start: int = 3) -> int:
    return start * 2


@pipeline
def seed_pipeline(produce):
    produce()


class SeedCfg(StepEntrypointConfiguration):
    CUSTOM = ["--zeta", "z", "--alpha=-1", "--mid", ""]

    @classmethod
    def get_custom_entrypoint_options(cls):
        return {"zeta", "alpha", "mid"}

    @classmethod
    def get_custom_entrypoint_arguments(cls, step, **kwargs):
        return list(cls.CUSTOM)

    def get_run_name(self, pipeline_name):
        return f"seed-{self.entrypoint_args['zeta']}"


class UndeclaredCfg(SeedCfg):
    CUSTOM = [*SeedCfg.CUSTOM, "--undeclared", "x"]


class RepeatedCfg(SeedCfg):
    CUSTOM = [*SeedCfg.CUSTOM, "--zeta=again"]
'''

# The seed's main(), word for word where it touches the configuration.
SEED_MAIN = """
import argparse
import sys

from stepwire.entrypoints.exit_codes import run_and_exit
from stepwire.source_utils import load_source_path_class


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entrypoint_config_source", required=True)
    args, remaining = parser.parse_known_args(sys.argv[1:])
    entrypoint_config_class = load_source_path_class(args.entrypoint_config_source)
    entrypoint_config = entrypoint_config_class(arguments=remaining)
    entrypoint_config.run()


if __name__ == "__main__":
    run_and_exit(main)
"""

CONTRACT_ORDER = [
    "entrypoint_config_source",
    "main_module_source",
    "step_source",
    "pipeline_json",
    "input_artifact_sources",
    "materializer_sources",
    "contract_version",
    "run_name",
]


@dataclass(frozen=True)
class Seed:
    dir: Path
    module: Any
    step: Any
    ir: Any
    args: list[str]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    root = tmp_path_factory.mktemp("seed")
    (root / "seedmod.py").write_text(SEEDMOD)
    (root / "seed_main.py").write_text(SEED_MAIN)
    sys.path.insert(0, str(root))
    saved = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "seedmod"
    try:
        import seedmod

        p = seedmod.seed_pipeline(produce=seedmod.produce())
        ir = p.compile()
        step = p.steps["produce"]
        args = seedmod.SeedCfg.get_entrypoint_arguments(step=step, pb2_pipeline=ir, run_name="r1")
        yield Seed(root, seedmod, step, ir, args)
    finally:
        constants.USER_MAIN_MODULE = saved
        sys.path.remove(str(root))
        sys.modules.pop("seedmod", None)


def _raw_options(args: list[str]) -> dict[str, str]:
    """Each option of a canonical argv with its value element, as written."""
    raw: dict[str, str] = {}
    i = 0
    while i < len(args):
        name, joined, value = args[i][2:].partition("=")
        if not joined:
            value = args[i + 1]
            i += 1
        raw[name] = value
        i += 1
    return raw


def test_a_configuration_built_as_the_seeds_main_does_runs_the_step(
    seed: Seed, stack_dir: StackDir
) -> None:
    # Real process: the seed's main() (argparse takes --entrypoint_config_source off the
    # command line), then run() under run_and_exit.
    proc = stack_dir.run([sys.executable, "seed_main.py", *seed.args], cwd=seed.dir)
    assert proc.returncode == 0, explain(proc)
    assert stack_dir.step_record("seed-z", "produce").status == "completed", explain(proc)
    assert stack_dir.output("seed-z", "produce", int) == 6


def test_unit_entrypoint_args_hold_every_value_as_written(seed: Seed) -> None:
    raw = _raw_options(seed.args)
    assert set(raw) == {*CONTRACT_ORDER, "zeta", "alpha", "mid"}
    # base64 on the command line, the value exactly as it was there.
    assert not raw["pipeline_json"].startswith("{")
    assert json.loads(base64.b64decode(raw["pipeline_json"]))["pipelineInfo"]["id"] == (
        "seed_pipeline"
    )
    assert (raw["contract_version"], raw["run_name"]) == ("1", "r1")
    assert (raw["zeta"], raw["alpha"], raw["mid"]) == ("z", "-1", "")

    with_source = seed.module.SeedCfg(arguments=seed.args)
    assert with_source.entrypoint_args == raw
    # As the seed's main() passed them: without --entrypoint_config_source.
    without_source = seed.module.SeedCfg(arguments=seed.args[2:])
    assert seed.args[:2] == ["--entrypoint_config_source", "seedmod.SeedCfg"]
    assert without_source.entrypoint_args == raw
    assert all(isinstance(v, str) for v in without_source.entrypoint_args.values())


def test_unit_decoded_args_hold_the_typed_values(seed: Seed) -> None:
    from google.protobuf import json_format

    from stepwire.pipelines.dehydrate import dehydrate

    for arguments in (seed.args, seed.args[2:]):
        decoded = seed.module.SeedCfg(arguments=arguments).decoded_args
        args = decoded.args
        assert args.entrypoint_config_source == "seedmod.SeedCfg"
        assert (args.main_module_source, args.step_source) == ("seedmod", "seedmod.produce")
        expected_ir = json_format.MessageToDict(dehydrate(seed.ir, "produce"))
        assert json.loads(args.pipeline_json) == expected_ir
        assert dict(args.input_artifact_sources) == {}
        assert dict(args.materializer_sources) == {
            "output": "stepwire.materializers.builtin_materializer.BuiltInMaterializer"
        }
        assert (args.contract_version, args.run_name) == (1, "r1")
        assert dict(decoded.custom) == {"zeta": "z", "alpha": "-1", "mid": ""}


def test_unit_custom_arguments_come_after_the_contract_options_sorted_by_name(
    seed: Seed,
) -> None:
    assert seed.module.SeedCfg.CUSTOM == ["--zeta", "z", "--alpha=-1", "--mid", ""]
    flags = [element[2:].partition("=")[0] for element in seed.args if element.startswith("--")]
    assert flags == [*CONTRACT_ORDER, "alpha", "mid", "zeta"]
    # Two elements each, except a value starting with '-' (one element, '=').
    assert seed.args[-5:] == ["--alpha=-1", "--mid", "", "--zeta", "z"]


@pytest.mark.parametrize(
    ("config", "kind", "fragment"),
    [
        ("UndeclaredCfg", codec.ErrorKind.BAD_CUSTOM_OPTION, "--undeclared"),
        ("RepeatedCfg", codec.ErrorKind.REPEATED_OPTION, "--zeta: given more than once"),
    ],
)
def test_unit_an_undeclared_or_repeated_custom_argument_is_refused_when_built(
    seed: Seed, config: str, kind: codec.ErrorKind, fragment: str
) -> None:
    cfg = getattr(seed.module, config)
    with pytest.raises(codec.EncodeError) as caught:
        cfg.get_entrypoint_arguments(step=seed.step, pb2_pipeline=seed.ir, run_name="r1")
    assert caught.value.kind is kind
    assert fragment in str(caught.value)
