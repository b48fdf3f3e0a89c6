"""Sections 2 and 5: command-line size, build/read time and memory against pipeline size.

One process per pipeline: ``sizes.py --shape chain --steps N`` or ``--shape wide
--width K`` (a node with K inputs and K outputs). It compiles the pipeline with
TFX's compiler, builds every step's arguments as the subprocess orchestrator does
(recording this process's peak RSS at each stage), times the build and the read of
sampled steps' arguments (the codec alone and the full configuration path), and,
for chains, runs the first step as a real step process to record its time and
peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import harness
import pipelines_gen


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def timed(function: Any, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["chain", "wide"], required=True)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--width", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20, help="repeats of each micro-timing")
    parser.add_argument("--compile-runs", type=int, default=1)
    parser.add_argument("--step-runs", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()

    import os

    from bench_configs import AwsBatchConfiguration
    from google.protobuf import json_format

    from stepwire import _protos
    from stepwire.entrypoints import budgets, codec
    from stepwire.orchestrators.subprocess_orchestrator import (
        SubprocessEntrypointConfiguration,
        SubprocessOrchestrator,
    )
    from stepwire.pipeline_ir import PipelineIndex
    from stepwire.stack import get_active_stack

    work = harness.work_folder("stepwire-bench-sizes-")
    os.environ["STEPWIRE_ARTIFACT_STORE"] = str(work / "artifacts")
    os.environ["STEPWIRE_METADATA_URI"] = str(work / "metadata.db")
    result: dict[str, Any] = {"shape": options.shape, "rss_kib": {"imports": rss_kib()}}

    if options.shape == "chain":
        name, source = "bench_chain", pipelines_gen.chain_source(options.steps)
    else:
        name, source = "bench_wide", pipelines_gen.wide_source(options.width)
    modules = work / "src"
    pipelines_gen.write_module(modules, name, source)
    start = time.perf_counter()
    pipeline = pipelines_gen.load_pipeline(modules, name)
    result["load_module_seconds"] = time.perf_counter() - start
    result["rss_kib"]["module"] = rss_kib()

    start = time.perf_counter()
    pb2 = pipeline.compile(pipeline_root=str(work / "artifacts"))
    compile_seconds = [time.perf_counter() - start]
    result["rss_kib"]["compiled"] = rss_kib()
    result["nodes"] = len(pb2.nodes)
    result["full_ir_json_bytes"] = len(json_format.MessageToJson(pb2, indent=None).encode())

    config = SubprocessEntrypointConfiguration
    command = config.get_entrypoint_command()
    steps = SubprocessOrchestrator._get_sorted_steps(pipeline, pb2)
    run_name = "bench-run-00000000"

    stack = get_active_stack()
    # Every step's command line, as SubprocessOrchestrator.prepare_or_run_pipeline builds them.
    start = time.perf_counter()
    index = PipelineIndex(pb2)
    commands = {
        step.name: command
        + config.get_entrypoint_arguments(
            step=step, pb2_pipeline=pb2, run_name=run_name, stack=stack, pipeline_index=index
        )
        for step in steps
    }
    upstream = {step.name: set(index.node(step.name).upstream_nodes) for step in steps}
    result["build_all_seconds"] = time.perf_counter() - start
    result["rss_kib"]["all_arguments_built"] = rss_kib()
    result["all_arguments_bytes"] = sum(budgets.LINUX.total(c) for c in commands.values())
    del upstream

    if options.shape == "chain":
        picks = sorted({0, len(steps) // 2, len(steps) - 1})
    else:
        picks = [i for i, step in enumerate(steps) if step.name == "node"]
    samples = []
    for index in picks:
        step = steps[index]
        argv = commands[step.name][len(command) :]

        def build(step: Any = step) -> list[str]:
            return config.get_entrypoint_arguments(
                step=step, pb2_pipeline=pb2, run_name=run_name, stack=stack
            )

        decoded = codec.decode(argv)

        def read_full(argv: list[str] = argv) -> None:
            decoded_ = config._decode_arguments(argv, reader=None)
            json_format.Parse(decoded_.args.pipeline_json, _protos.Pipeline())

        aws = command + AwsBatchConfiguration.get_entrypoint_arguments(
            step=step, pb2_pipeline=pb2, run_name=run_name, stack=stack
        )
        pipeline_value = argv[argv.index("--pipeline_json") + 1]
        samples.append(
            {
                "index": index,
                "step": step.name,
                "inputs": len(step.INPUT_SPEC),
                "outputs": len(step.OUTPUT_SIGNATURE),
                "argv_bytes": budgets.LINUX.total(command + argv),
                "aws_batch_total": budgets.AWS_BATCH.total(command + argv),
                "pipeline_json_element_bytes": len(pipeline_value),
                "pipeline_json_form": "zlib"
                if pipeline_value.startswith("zlib:")
                else ("ref" if pipeline_value.startswith("ref:") else "inline"),
                "aws_batch_config_total": budgets.AWS_BATCH.total(aws),
                "aws_batch_config_uses_reference": any(a.startswith("ref:") for a in aws),
                "build_seconds": timed(build, options.repeats),
                "codec_encode_seconds": timed(
                    lambda d=decoded: codec.encode(d.args), options.repeats
                ),
                "codec_decode_seconds": timed(lambda a=argv: codec.decode(a), options.repeats),
                "parse_arguments_seconds": timed(
                    lambda a=argv: config._parse_arguments(a), options.repeats
                ),
                "read_with_ir_parse_seconds": timed(read_full, options.repeats),
            }
        )
    result["samples"] = samples

    for _ in range(options.compile_runs - 1):
        start = time.perf_counter()
        pipeline.compile(pipeline_root=str(work / "artifacts"))
        compile_seconds.append(time.perf_counter() - start)
    result["compile_seconds"] = compile_seconds

    if options.step_runs and options.shape == "chain":
        env = harness.step_env(work / "artifacts", work / "metadata.db", modules)
        first = steps[0]
        runs = []
        for i in range(options.step_runs + 1):  # the first one is a warm-up
            arguments = config.get_entrypoint_arguments(
                step=first, pb2_pipeline=pb2, run_name=f"bench-{i}"
            )
            r = harness.run_timed(command + arguments, env=env, cwd=work, log=work / "step.log")
            runs.append({k: r[k] for k in ("seconds", "max_rss_kib", "user_seconds")})
        result["step_process"] = runs[1:]
    harness.write_json(options.out, result)


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
