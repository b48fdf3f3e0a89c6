"""Steps: the units of a pipeline, as classes or ``@step`` functions."""

from stepwire.steps.base_step import BaseStep
from stepwire.steps.resources import Resources
from stepwire.steps.secret import Secret
from stepwire.steps.signature import Output
from stepwire.steps.step_decorator import step

__all__ = ["BaseStep", "Output", "Resources", "Secret", "step"]
