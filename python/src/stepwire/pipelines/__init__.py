"""Pipelines: steps wired into a DAG and compiled to TFX's pipeline IR.

``dehydrate`` (cutting the IR down to one step) lives in
:mod:`stepwire.pipelines.dehydrate`.
"""

from stepwire.pipelines.base_pipeline import BasePipeline
from stepwire.pipelines.pipeline_decorator import pipeline

__all__ = ["BasePipeline", "pipeline"]
