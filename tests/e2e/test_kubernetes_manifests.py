"""``stepwire manifests``: the Kubernetes objects are valid by the published schemas.

No cluster can run here, so the objects are checked against what their engines
publish, and each step's command line is decoded back by ``stepwire args explain``:

* core objects (a Job, and every pod a Workflow or RayJob makes) with
  kubernetes-validate in strict mode (Kubernetes' own OpenAPI schemas, no field
  unknown to them);
* the Argo Workflow with hera's models, generated from Argo's OpenAPI schema: the
  Workflow must survive a round trip through them unchanged (an unknown field or a
  wrong type would be dropped or refused);
* the RayJob's cluster with Ray's own reader of KubeRay objects (the code Ray's
  autoscaler runs on the cluster), and its top-level fields against KubeRay v1's
  RayJob fields (KubeRay publishes its CRD only in its repository, not reachable
  here).

Real processes: the ``stepwire`` CLI writes the manifests of a pipeline on a stack
of a MySQL server and an S3 bucket (neither is contacted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hera.workflows.models import Workflow
from stepwire_testkit import clean_environment, explain

PASSWORD = "hunter2-never-in-a-manifest"
KUBERNETES = "1.37.0"
RAYJOB_FIELDS = {
    "activeDeadlineSeconds",
    "backoffLimit",
    "clusterSelector",
    "deletionStrategy",
    "entrypoint",
    "entrypointNumCpus",
    "entrypointNumGpus",
    "entrypointResources",
    "jobId",
    "managedBy",
    "metadata",
    "rayClusterSpec",
    "runtimeEnvYAML",
    "shutdownAfterJobFinishes",
    "submissionMode",
    "submitterConfig",
    "submitterPodTemplate",
    "suspend",
    "ttlSecondsAfterFinished",
}

PIPELINE = textwrap.dedent(
    """
    from stepwire.pipelines import pipeline
    from stepwire.steps import Resources, step


    @step
    def load_data() -> int:
        return 1


    @step(
        resources=Resources(
            cpus=0.5,
            memory=2**30,
            gpus=1,
            custom={"stepwire_worker": 1, "example.com/fpga": 2},
            accelerator_type="A100",
        ),
        retries=2,
    )
    def train_model(value: int) -> int:
        return value + 1


    @step
    def evaluate(value: int, model: int) -> int:
        return value + model


    @pipeline
    def fit(load_data, train_model, evaluate):
        data = load_data()
        evaluate(value=data, model=train_model(value=data))


    fit_pipeline = fit(load_data=load_data(), train_model=train_model(), evaluate=evaluate())
    """
)

UPSTREAM = {"load-data": [], "train-model": ["load-data"], "evaluate": ["load-data", "train-model"]}


def _env(**values: str) -> dict[str, str]:
    stack = {
        "STEPWIRE_CONFIG": "",
        "STEPWIRE_METADATA_TYPE": "mysql",
        "STEPWIRE_METADATA_HOST": "mlmd.ml.svc.cluster.local",
        "STEPWIRE_METADATA_DATABASE": "mlmd",
        "STEPWIRE_METADATA_USER": "steps",
        "STEPWIRE_METADATA_PASSWORD": PASSWORD,
        "STEPWIRE_ARTIFACT_STORE": "s3://ml-artifacts/runs",
    }
    return clean_environment(**{**stack, **values})


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepwire", *args],
        cwd=tmp_path,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("manifests")
    (root / "fit_pipeline.py").write_text(PIPELINE)
    written = {}
    for kind in ("argo", "jobs", "rayjob"):
        out = root / f"{kind}.yaml"
        proc = _cli(
            root,
            "manifests",
            kind,
            f"{root}/fit_pipeline.py:fit_pipeline",
            "--image",
            "registry.example.com/ml/fit:1.0",
            "--run-name",
            "fit_run_1",
            "--namespace",
            "ml",
            "-o",
            str(out),
        )
        assert proc.returncode == 0, explain(proc)
        assert proc.stdout.strip() == f"wrote {1 if kind != 'jobs' else 3} object(s) " + (
            f"for run fit_run_1 to {out}"
        )
        written[kind] = out
    return written


def _load(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def _strict(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_no_credential_is_in_any_manifest(manifests: dict[str, Path]) -> None:
    for path in manifests.values():
        text = path.read_text()
        assert PASSWORD not in text, path
        assert "STEPWIRE_METADATA_PASSWORD" not in text, path
        assert "secretRef:\n" in text, path


def test_the_workflow_is_a_dag_of_the_steps_valid_by_argo_and_kubernetes(
    manifests: dict[str, Path],
) -> None:
    [workflow] = _load(manifests["argo"])
    # hera's models are generated from Argo's schema: a round trip drops or refuses
    # anything the schema does not know.
    model = Workflow.model_validate(workflow)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == workflow
    spec = workflow["spec"]
    [dag] = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    tasks = {task["name"]: task.get("dependencies", []) for task in dag["dag"]["tasks"]}
    assert tasks == UPSTREAM
    templates = {t["name"]: t for t in spec["templates"] if "container" in t}
    assert set(templates) == set(UPSTREAM)
    for template in templates.values():
        _strict(_pod({"containers": [template["container"]], "restartPolicy": "Never"}))

    train = templates["train-model"]
    assert train["metadata"]["annotations"] == {
        "stepwire.dev/step": "train_model",
        "stepwire.dev/unmapped-resources": "stepwire_worker=1",
    }
    assert train["container"]["resources"] == {
        "requests": {"cpu": "500m", "memory": str(2**30)},
        "limits": {"memory": str(2**30), "nvidia.com/gpu": "1", "example.com/fpga": "2"},
    }
    assert train["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert train["retryStrategy"] == {
        "limit": "2",
        "retryPolicy": "Always",
        "expression": 'lastRetry.status == "Error" || '
        '(lastRetry.status == "Failed" && asInt(lastRetry.exitCode) in [70, 75])',
    }
    # A step without retries is launched again only when its pod was lost.
    assert templates["load-data"]["retryStrategy"]["expression"] == 'lastRetry.status == "Error"'
    env = {e["name"]: e["value"] for e in train["container"]["env"]}
    assert env["STEPWIRE_METADATA_HOST"] == "mlmd.ml.svc.cluster.local"
    assert env["STEPWIRE_ARTIFACT_STORE"] == "s3://ml-artifacts/runs"
    assert env["PYTHONPATH"] == "/app"
    # A retry of a pod lost after its step published exits 0, never failing the run.
    assert env["STEPWIRE_TOLERATE_RERUN"] == "1"
    assert workflow["metadata"]["name"] == "fit-run-1"
    assert workflow["metadata"]["namespace"] == "ml"


def test_the_jobs_are_strictly_valid_and_fail_fast_on_errors_no_retry_cures(
    manifests: dict[str, Path],
) -> None:
    jobs = _load(manifests["jobs"])
    assert [job["metadata"]["annotations"]["stepwire.dev/step"] for job in jobs] == [
        "load_data",
        "train_model",
        "evaluate",
    ]
    for job in jobs:
        _strict(job)
    train = jobs[1]
    assert train["metadata"]["name"] == "fit-run-1-train-model"
    assert train["metadata"]["annotations"]["stepwire.dev/upstream"] == "load-data"
    assert train["spec"]["backoffLimit"] == 2
    rules = train["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "step", "operator": "NotIn", "values": [70, 75]},
    }
    assert rules[1]["action"] == "Ignore"
    assert train["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_rayjob_is_read_by_rays_own_kuberay_code_and_its_pods_are_valid(
    manifests: dict[str, Path],
) -> None:
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    [job] = _load(manifests["rayjob"])
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert set(job["spec"]) <= RAYJOB_FIELDS
    cluster = job["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        _strict(_pod(group["template"]["spec"]))
    # What Ray's autoscaler derives from the cluster spec on a real cluster (and
    # checks against its own config schema).
    derived = _derive_autoscaling_config_from_ray_cr(
        {"metadata": {"name": "fit-run-1", "namespace": "ml"}, "spec": cluster}
    )
    workers = derived["available_node_types"]["steps"]
    assert workers["resources"]["CPU"] == 1
    assert workers["resources"]["GPU"] == 1
    assert workers["resources"]["stepwire_worker"] == 1
    assert workers["resources"]["example.com/fpga"] == 2
    assert workers["resources"]["memory"] == 2 * 1024**3
    assert derived["available_node_types"]["headgroup"]["resources"]["CPU"] == 0
    assert job["spec"]["entrypoint"] == (
        "python -m stepwire run fit_pipeline:fit_pipeline --orchestrator ray --run-name fit_run_1"
    )
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in head["env"]}
    assert env["STEPWIRE_ORCHESTRATOR"] == "ray"
    assert head["envFrom"] == [{"secretRef": {"name": "stepwire-stack"}}]


@pytest.mark.parametrize("kind", ["argo", "jobs"])
def test_explain_decodes_every_step_of_the_manifests(
    manifests: dict[str, Path], kind: str, tmp_path: Path
) -> None:
    for step, name in [("load_data", "load-data"), ("train_model", "train-model")]:
        for asked in (step, name):
            proc = _cli(
                tmp_path,
                "args",
                "explain",
                "--json",
                "--from-file",
                str(manifests[kind]),
                "--step",
                asked,
            )
            assert proc.returncode == 0, explain(proc)
            decoded = json.loads(proc.stdout)
            assert decoded["pipeline"]["node"] == step, decoded["pipeline"]
            assert decoded["options"]["step_source"] == f"fit_pipeline.{step}"
            assert decoded["options"]["run_name"] == "fit_run_1"
    several = _cli(tmp_path, "args", "explain", "--from-file", str(manifests[kind]))
    assert several.returncode == 64, explain(several)
    assert several.stderr.strip().endswith(
        "holds 3 steps (load_data, train_model, evaluate); name one with --step"
    )
    unknown = _cli(
        tmp_path, "args", "explain", "--from-file", str(manifests[kind]), "--step", "nope"
    )
    assert unknown.returncode == 64, explain(unknown)
    assert "no step named 'nope' in it; it holds: load_data, train_model, evaluate" in (
        unknown.stderr
    )


def test_a_stack_pods_cannot_share_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "fit_pipeline.py").write_text(PIPELINE)
    target = f"{tmp_path}/fit_pipeline.py:fit_pipeline"
    proc = _cli(
        tmp_path,
        "manifests",
        "argo",
        target,
        "--image",
        "i",
        STEPWIRE_METADATA_TYPE="sqlite",
        STEPWIRE_METADATA_URI=str(tmp_path / "m.db"),
    )
    assert proc.returncode == 2, explain(proc)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"stepwire: pods cannot share the metadata store SQLite file {tmp_path}")

    local = _cli(
        tmp_path, "manifests", "jobs", target, "--image", "i", STEPWIRE_ARTIFACT_STORE="/data"
    )
    assert local.returncode == 2, explain(local)
    assert local.stderr.strip() == (
        "stepwire: pods cannot share the artifact store folder /data: use an object store "
        "(s3://, gs://, az://)"
    )
