r"""The demo: compare two classifiers on scikit-learn's wine data, every step in its own process.

Eight steps with a fan-out and a fan-in:

    load_data -> split -> train_logistic -> evaluate_logistic --+
                       \\-> train_ridge    -> evaluate_ridge    --+-> pick_best -> report

Run it with ``nox -s demo`` or ``stepwire run python/examples/wine_pipeline.py:wine_pipeline``.
The data set ships inside scikit-learn: nothing is fetched from the internet.
Models travel between steps as plain parameters (``LinearModel``) written by
the ``LinearModelMaterializer`` below, a user materializer registered by import;
nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from stepwire import io_utils
from stepwire.artifacts import ModelArtifact
from stepwire.materializers import BaseMaterializer
from stepwire.pipelines import pipeline
from stepwire.steps import BaseStep, Output, step


@dataclass(frozen=True)
class LinearModel:
    """A fitted linear classifier, reduced to what prediction needs."""

    kind: str
    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicts the class of each row."""
        scores = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        return np.asarray(self.classes[np.argmax(scores, axis=1)])


class LinearModelMaterializer(BaseMaterializer):
    """Writes a ``LinearModel`` as one ``.npz`` of arrays plus its kind, without pickle."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (LinearModel,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[Any], ...]] = (ModelArtifact,)

    def handle_input(self, data_type: type) -> LinearModel:
        """Reads the model back."""
        super().handle_input(data_type)
        with io_utils.open_file(io_utils.join(self.artifact.uri, "model.npz"), "rb") as f:
            arrays = dict(np.load(f, allow_pickle=False))
        with io_utils.open_file(io_utils.join(self.artifact.uri, "kind.json"), "r") as f:
            kind = json.load(f)
        return LinearModel(kind=kind, **arrays)

    def handle_return(self, data: LinearModel) -> None:
        """Writes the model."""
        super().handle_return(data)
        io_utils.makedirs(self.artifact.uri)
        with io_utils.open_file(io_utils.join(self.artifact.uri, "model.npz"), "wb") as f:
            np.savez(
                f,
                coef=data.coef,
                intercept=data.intercept,
                classes=data.classes,
                mean=data.mean,
                scale=data.scale,
            )
        with io_utils.open_file(io_utils.join(self.artifact.uri, "kind.json"), "w") as f:
            json.dump(data.kind, f)


@step
def load_data() -> Output(features=np.ndarray, target=np.ndarray):  # type: ignore[valid-type]
    """Loads the wine data set that scikit-learn ships."""
    from sklearn.datasets import load_wine

    data = load_wine()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


@step
def split(
    features: np.ndarray, target: np.ndarray, test_fraction: float = 0.3, seed: int = 7
) -> Output(  # type: ignore[valid-type]
    x_train=np.ndarray, x_test=np.ndarray, y_train=np.ndarray, y_test=np.ndarray
):
    """Splits rows into a training and a test set, stratified by class."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=test_fraction, random_state=seed, stratify=target
    )
    return x_train, x_test, y_train, y_test


def _fit(kind: str, estimator: Any, x_train: np.ndarray, y_train: np.ndarray) -> LinearModel:
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    estimator.fit((x_train - mean) / scale, y_train)
    return LinearModel(
        kind=kind,
        coef=np.asarray(estimator.coef_),
        intercept=np.asarray(estimator.intercept_),
        classes=np.asarray(estimator.classes_),
        mean=mean,
        scale=scale,
    )


@step
def train_logistic(x_train: np.ndarray, y_train: np.ndarray, c: float = 0.05) -> LinearModel:
    """Fits a logistic regression (strongly regularised, so the two models differ)."""
    from sklearn.linear_model import LogisticRegression

    return _fit("logistic regression", LogisticRegression(C=c, max_iter=1000), x_train, y_train)


@step
def train_ridge(x_train: np.ndarray, y_train: np.ndarray, alpha: float = 1.0) -> LinearModel:
    """Fits a ridge classifier."""
    from sklearn.linear_model import RidgeClassifier

    return _fit("ridge classifier", RidgeClassifier(alpha=alpha), x_train, y_train)


def _accuracy(model: LinearModel, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return float(np.mean(model.predict(x_test) == y_test))


@step
def evaluate_logistic(model: LinearModel, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test-set accuracy of the logistic regression."""
    return _accuracy(model, x_test, y_test)


@step
def evaluate_ridge(model: LinearModel, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test-set accuracy of the ridge classifier."""
    return _accuracy(model, x_test, y_test)


@step
def pick_best(
    logistic: LinearModel, logistic_accuracy: float, ridge: LinearModel, ridge_accuracy: float
) -> Output(best=str, accuracy=float):  # type: ignore[valid-type]
    """Chooses the model with the higher accuracy (ties go to the logistic regression)."""
    if ridge_accuracy > logistic_accuracy:
        return ridge.kind, ridge_accuracy
    return logistic.kind, logistic_accuracy


@step
def report(
    best: str, accuracy: float, logistic_accuracy: float, ridge_accuracy: float
) -> dict[str, Any]:
    """Summarises the comparison."""
    return {
        "best": best,
        "accuracy": round(accuracy, 4),
        "candidates": {
            "logistic regression": round(logistic_accuracy, 4),
            "ridge classifier": round(ridge_accuracy, 4),
        },
    }


@pipeline
def wine_classifier(  # noqa: PLR0917 - one parameter per step slot
    load_data: BaseStep,
    split: BaseStep,
    train_logistic: BaseStep,
    train_ridge: BaseStep,
    evaluate_logistic: BaseStep,
    evaluate_ridge: BaseStep,
    pick_best: BaseStep,
    report: BaseStep,
) -> None:
    """Wires the steps: one split feeds two models, two scores feed one choice."""
    features, target = load_data()
    x_train, x_test, y_train, y_test = split(features=features, target=target)
    logistic = train_logistic(x_train=x_train, y_train=y_train)
    ridge = train_ridge(x_train=x_train, y_train=y_train)
    logistic_accuracy = evaluate_logistic(model=logistic, x_test=x_test, y_test=y_test)
    ridge_accuracy = evaluate_ridge(model=ridge, x_test=x_test, y_test=y_test)
    best, accuracy = pick_best(
        logistic=logistic,
        logistic_accuracy=logistic_accuracy,
        ridge=ridge,
        ridge_accuracy=ridge_accuracy,
    )
    report(
        best=best,
        accuracy=accuracy,
        logistic_accuracy=logistic_accuracy,
        ridge_accuracy=ridge_accuracy,
    )


wine_pipeline = wine_classifier(
    load_data=load_data(),
    split=split(),
    train_logistic=train_logistic(),
    train_ridge=train_ridge(),
    evaluate_logistic=evaluate_logistic(),
    evaluate_ridge=evaluate_ridge(),
    pick_best=pick_best(),
    report=report(),
)

if __name__ == "__main__":
    wine_pipeline.run()
