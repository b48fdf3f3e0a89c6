"""``get_entrypoint_arguments`` in this process: what the command line of a step holds."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from stepwire import _protos, constants
from stepwire.entrypoints import codec
from stepwire.entrypoints.codec import ArgumentError, ErrorKind
from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.pipelines import BasePipeline
from stepwire.steps import BaseStep, step

USER_MAIN = "user_main"


def _chain_module(count: int) -> str:
    """Source of a module with steps s00..s<count-1> and chain pipelines of 3 and 20."""
    lines = [
        "from stepwire.pipelines import BasePipeline",
        "from stepwire.steps import step",
        "",
        "@step",
        "def s00() -> int:",
        "    return 0",
    ]
    for i in range(1, count):
        lines += ["", "@step", f"def s{i:02d}(x: int) -> int:", "    return x + 1"]
    for size in (3, 20):
        names = [f"s{i:02d}" for i in range(size)]
        lines += ["", f"class chain_{size:02d}(BasePipeline):"]
        lines += [f"    def connect(self, {', '.join(names)}):", "        out = s00()"]
        lines += [f"        out = {name}(x=out)" for name in names[1:]]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("chain")
    (root / "chainmod.py").write_text(_chain_module(20))
    sys.path.insert(0, str(root))
    try:
        import chainmod

        yield chainmod
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("chainmod", None)


@pytest.fixture(autouse=True)
def user_main(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under pytest, `__main__` is pytest's launcher; name a user script instead.
    monkeypatch.setattr(constants, "USER_MAIN_MODULE", USER_MAIN)


def _pipeline(chain: Any, size: int, tmp_path: Path) -> tuple[BasePipeline, _protos.Pipeline]:
    pipeline_class = getattr(chain, f"chain_{size:02d}")
    p: BasePipeline = pipeline_class(
        **{f"s{i:02d}": getattr(chain, f"s{i:02d}")() for i in range(size)}
    )
    return p, p.compile(pipeline_root=str(tmp_path / "root"))


class Cfg(StepEntrypointConfiguration):
    def get_run_name(self, pipeline_name: str) -> str:
        return "unused"


class ClashingCfg(Cfg):
    @classmethod
    def get_custom_entrypoint_options(cls) -> set[str]:
        return {"step_source"}

    @classmethod
    def get_custom_entrypoint_arguments(cls, step: BaseStep, **kwargs: Any) -> list[str]:
        return ["--step_source", "elsewhere.Step"]


class ForgetfulCfg(Cfg):
    @classmethod
    def get_custom_entrypoint_options(cls) -> set[str]:
        return {"attempt"}


class KwargsCfg(Cfg):
    @classmethod
    def get_custom_entrypoint_options(cls) -> set[str]:
        return {"attempt"}

    @classmethod
    def get_custom_entrypoint_arguments(cls, step: BaseStep, **kwargs: Any) -> list[str]:
        return ["--attempt", f"{step.name}:{kwargs['attempt']}"]


def _node_json(args: list[str]) -> _protos.Pipeline:
    ir = _protos.Pipeline()
    json_format.Parse(Cfg(arguments=args).decoded_args.args.pipeline_json, ir)
    return ir


def test_arguments_parse_back(chain: Any, tmp_path: Path) -> None:
    p, ir = _pipeline(chain, 3, tmp_path)
    args = Cfg.get_entrypoint_arguments(step=p.steps["s01"], pb2_pipeline=ir)
    config = Cfg(arguments=args)
    decoded = codec.as_dict(config.decoded_args.args)
    assert decoded["entrypoint_config_source"] == f"{Cfg.__module__}.Cfg"
    assert decoded["main_module_source"] == USER_MAIN
    assert decoded["step_source"] == "chainmod.s01"
    assert decoded["input_artifact_sources"] == {
        "x": "stepwire.artifacts.standard_artifacts.DataArtifact"
    }
    assert decoded["materializer_sources"] == {
        "output": "stepwire.materializers.builtin_materializer.BuiltInMaterializer"
    }
    assert decoded["contract_version"] == 1
    assert "run_name" not in decoded
    # As in the seed, entrypoint_args holds each value as given on the command line.
    raw = Cfg._parse_arguments(args)
    assert config.entrypoint_args == raw
    for flag, value in raw.items():
        assert args[args.index(f"--{flag}") + 1] == value
    assert raw["contract_version"] == "1"
    # The contract version travels as its own pair of elements.
    i = args.index("--contract_version")
    assert args[i + 1] == "1"


def test_custom_arguments_get_the_step_and_the_keyword_arguments(
    chain: Any, tmp_path: Path
) -> None:
    p, ir = _pipeline(chain, 3, tmp_path)
    args = KwargsCfg.get_entrypoint_arguments(step=p.steps["s02"], pb2_pipeline=ir, attempt=3)
    assert args[-2:] == ["--attempt", "s02:3"]
    assert KwargsCfg(arguments=args).entrypoint_args["attempt"] == "s02:3"
    # The same command line, read without the custom option declared, simply skips it.
    assert "attempt" not in Cfg._parse_arguments(args)


def test_the_command_line_carries_only_the_steps_own_node(chain: Any, tmp_path: Path) -> None:
    small, small_ir = _pipeline(chain, 3, tmp_path / "small")
    large, large_ir = _pipeline(chain, 20, tmp_path / "large")
    assert len(large_ir.nodes) == 20

    small_args = Cfg.get_entrypoint_arguments(step=small.steps["s01"], pb2_pipeline=small_ir)
    large_args = Cfg.get_entrypoint_arguments(step=large.steps["s01"], pb2_pipeline=large_ir)
    for args, pipeline_name in ((small_args, "chain_03"), (large_args, "chain_20")):
        ir = _node_json(args)
        assert ir.pipeline_info.id == pipeline_name
        [node] = ir.nodes
        assert node.pipeline_node.node_info.id == "s01"

    small_json = Cfg._parse_arguments(small_args)["pipeline_json"]
    large_json = Cfg._parse_arguments(large_args)["pipeline_json"]
    full_json = json_format.MessageToJson(large_ir, indent=None)
    assert len(large_json) * 5 < len(full_json)
    # Seventeen more steps in the pipeline, (almost) nothing more for this step.
    assert abs(len(large_json) - len(small_json)) <= 8
    assert abs(sum(map(len, large_args)) - sum(map(len, small_args))) <= 8


def test_a_custom_option_that_clashes_with_the_contract_is_refused(
    chain: Any, tmp_path: Path
) -> None:
    p, ir = _pipeline(chain, 3, tmp_path)
    with pytest.raises(ArgumentError, match="step_source") as caught:
        ClashingCfg.get_entrypoint_arguments(step=p.steps["s00"], pb2_pipeline=ir)
    assert caught.value.kind is ErrorKind.OPTION_CLASH


def test_a_missing_custom_argument_is_refused(chain: Any, tmp_path: Path) -> None:
    p, ir = _pipeline(chain, 3, tmp_path)
    with pytest.raises(ArgumentError, match="--attempt") as caught:
        ForgetfulCfg.get_entrypoint_arguments(step=p.steps["s00"], pb2_pipeline=ir)
    assert caught.value.kind is ErrorKind.MISSING_OPTION
    assert caught.value.flag == "attempt"


# --- the `__main__` rule -----------------------------------------------------------


def main_step() -> int:
    return 7


class lone(BasePipeline):
    def connect(self, only: BaseStep) -> None:
        only()


@pytest.fixture
def fake_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A `__main__` that is `python user_script.py`, where the script defines classes."""
    script = tmp_path / "project" / "user_script.py"
    script.parent.mkdir()
    script.write_text("# the user's script\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(constants, "USER_MAIN_MODULE", None)
    return main


def _main_classes(main: types.ModuleType) -> tuple[type[Cfg], type[BaseStep]]:
    """A configuration and a step class defined in `__main__`."""
    config_class = type("MainCfg", (Cfg,), {"__module__": "__main__"})
    function = types.FunctionType(main_step.__code__, globals(), "main_step")
    function.__module__ = "__main__"
    step_class = step(function)
    main.MainCfg = config_class  # type: ignore[attr-defined]
    main.main_step = step_class  # type: ignore[attr-defined]
    return config_class, step_class


def test_classes_in_main_are_named_by_the_main_module_source(
    fake_main: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_class, step_class = _main_classes(fake_main)
    p = lone(only=step_class())
    ir = p.compile(pipeline_root=str(tmp_path / "root"))
    parsed = Cfg._parse_arguments(
        config_class.get_entrypoint_arguments(step=p.steps["only"], pb2_pipeline=ir)
    )
    assert parsed["main_module_source"] == "user_script"
    assert parsed["entrypoint_config_source"] == "user_script.MainCfg"
    assert parsed["step_source"] == "user_script.main_step"
    # Inside a step process `__main__` is the entrypoint: the user's module set there
    # wins, so nested launches still name the user's script.
    monkeypatch.setattr(constants, "USER_MAIN_MODULE", "pkg.user_script")
    parsed = Cfg._parse_arguments(
        config_class.get_entrypoint_arguments(step=p.steps["only"], pb2_pipeline=ir)
    )
    assert parsed["main_module_source"] == "pkg.user_script"
    assert parsed["entrypoint_config_source"] == "pkg.user_script.MainCfg"
    assert parsed["step_source"] == "pkg.user_script.main_step"
