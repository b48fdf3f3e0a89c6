r"""The demo: compare two classifiers on scikit-learn's wine data, every step in its own process.

Eight steps with a fan-out and a fan-in:

    load_data -> split -> train_logistic -> evaluate_logistic --+
                       \\-> train_ridge    -> evaluate_ridge    --+-> pick_best -> report

Run it with ``nox -s demo`` or ``stepwire run python/examples/wine_pipeline.py:wine_pipeline``.
The data set ships inside scikit-learn: nothing is fetched from the internet.
The data travels as a pandas DataFrame and Series (Parquet), the models as fitted
scikit-learn pipelines (skops), with stepwire's built-in materializers: nothing is
pickled and no materializer is written by hand. The models are annotated
``Pipeline``: a pipeline is a ``BaseEstimator`` but not a ``ClassifierMixin``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from stepwire.pipelines import pipeline
from stepwire.steps import BaseStep, Output, step


@step
def load_data() -> Output(features=pd.DataFrame, target=pd.Series):  # type: ignore[valid-type]
    """Loads the wine data set that scikit-learn ships, as a DataFrame and a Series."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    return data.data, data.target


@step
def split(
    features: pd.DataFrame, target: pd.Series, test_fraction: float = 0.3, seed: int = 7
) -> Output(  # type: ignore[valid-type]
    x_train=pd.DataFrame, x_test=pd.DataFrame, y_train=pd.Series, y_test=pd.Series
):
    """Splits rows into a training and a test set, stratified by class."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=test_fraction, random_state=seed, stratify=target
    )
    return x_train, x_test, y_train, y_test


@step
def train_logistic(x_train: pd.DataFrame, y_train: pd.Series, c: float = 0.05) -> Pipeline:
    """Fits a logistic regression (strongly regularised, so the two models differ)."""
    from sklearn.linear_model import LogisticRegression

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
    return model.fit(x_train, y_train)


@step
def train_ridge(x_train: pd.DataFrame, y_train: pd.Series, alpha: float = 1.0) -> Pipeline:
    """Fits a ridge classifier."""
    from sklearn.linear_model import RidgeClassifier

    return make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)).fit(x_train, y_train)


def _accuracy(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> float:
    return float(np.mean(model.predict(x_test) == y_test.to_numpy()))


@step
def evaluate_logistic(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> float:
    """Test-set accuracy of the logistic regression."""
    return _accuracy(model, x_test, y_test)


@step
def evaluate_ridge(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> float:
    """Test-set accuracy of the ridge classifier."""
    return _accuracy(model, x_test, y_test)


_KINDS = {"LogisticRegression": "logistic regression", "RidgeClassifier": "ridge classifier"}


@step
def pick_best(
    logistic: Pipeline,
    logistic_accuracy: float,
    ridge: Pipeline,
    ridge_accuracy: float,
) -> Output(best=str, accuracy=float):  # type: ignore[valid-type]
    """Chooses the model with the higher accuracy (ties go to the logistic regression)."""
    if ridge_accuracy > logistic_accuracy:
        return _KINDS[type(ridge[-1]).__name__], ridge_accuracy
    return _KINDS[type(logistic[-1]).__name__], logistic_accuracy


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
