"""Kubernetes manifests for a pipeline: what a user applies to run it on a cluster.

stepwire does not talk to a cluster; it writes the objects a user applies with
``kubectl apply -f``:

* an Argo ``Workflow``: a DAG of one template per step, each running the step's
  command line (:mod:`stepwire.kubernetes.argo_workflow`);
* one ``batch/v1`` ``Job`` per step, for a scheduler of the user's own
  (:mod:`stepwire.kubernetes.step_jobs`);
* a KubeRay ``RayJob`` that runs the whole pipeline with the ``ray`` orchestrator
  on a Ray cluster it creates (:mod:`stepwire.kubernetes.ray_job`).

Every pod gets the stack through environment variables; credentials only through a
Kubernetes Secret the pod reads (``envFrom``), never in argv or in the manifest.
"""
