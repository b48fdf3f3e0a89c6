"""A user script: three steps and a pipeline, run at import time on purpose.

There is no ``if __name__ == "__main__"`` guard, so a step process that imports this
module relies on stepwire preventing pipeline execution. Settings come from the
environment: RUN_NAME, LR, FAIL_TRAINER.
"""

import json
import os

import numpy as np

from stepwire.pipelines import pipeline
from stepwire.steps import Output, step


@step
def loader() -> Output(features=np.ndarray, labels=list):  # type: ignore[valid-type]
    return np.arange(6, dtype=np.float64).reshape(3, 2), [1, 0, 1]


@step
def trainer(features: np.ndarray, labels: list, lr: float = 0.5) -> dict:
    if os.environ.get("FAIL_TRAINER"):
        raise RuntimeError("trainer failed on purpose")
    return {"w": float(features.sum()) * lr, "n": len(labels), "shape": tuple(features.shape)}


@step
def evaluator(model: dict) -> str:
    return f"w={model['w']} n={model['n']} shape={model['shape']}"


@pipeline
def train_pipeline(loader, trainer, evaluator):
    features, labels = loader()
    model = trainer(features=features, labels=labels)
    evaluator(model=model)


result = train_pipeline(
    loader=loader(),
    trainer=trainer(lr=float(os.environ.get("LR", "0.5"))),
    evaluator=evaluator(),
).run(run_name=os.environ.get("RUN_NAME"))
if result is not None:
    print("RESULT " + json.dumps(result))
