"""The scikit-learn materializer: skops files, the trusted-types rule, and how it is found.

Models are written and read back by real materializer instances on real files; the
untrusted files are built with skops directly, as an attacker with write access to
the artifact store would, and must be refused before anything in them is built.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import sklearn
import skops.io as sio
from sklearn import (
    cluster,
    compose,
    ensemble,
    impute,
    linear_model,
    model_selection,
    neighbors,
    neural_network,
    pipeline,
    preprocessing,
    svm,
    tree,
)
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClusterMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning

from stepwire.artifacts import ModelArtifact, type_registry
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import (
    BaseMaterializer,
    BuiltInMaterializer,
    SklearnMaterializer,
    default_materializer_registry,
)
from stepwire.materializers.artifact_metadata import ArtifactVersionError
from stepwire.materializers.sklearn_materializer import UntrustedTypesError
from stepwire.steps import Output, step

RNG = np.random.default_rng(0)
X = RNG.random((120, 4))
Y_CLASS = (X[:, 0] + X[:, 1] > 1).astype(np.int64)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 3.0])


def artifact_at(path: Path) -> ModelArtifact:
    artifact = ModelArtifact()
    artifact.uri = str(path)
    return artifact


def properties(artifact: ModelArtifact) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in artifact.mlmd_artifact.custom_properties.items():
        found[key] = value.int_value if value.HasField("int_value") else value.string_value
    return found


def _fitted(model: Any, target: np.ndarray | None) -> Any:
    with warnings.catch_warnings():
        # A few iterations on purpose: the models only have to be fitted, not good.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X) if target is None else model.fit(X, target)


MODELS = {
    "random forest": (ensemble.RandomForestClassifier(n_estimators=5, random_state=0), Y_CLASS),
    "gradient boosting": (ensemble.GradientBoostingRegressor(n_estimators=5), Y_REG),
    "histogram gradient boosting": (ensemble.HistGradientBoostingClassifier(max_iter=5), Y_CLASS),
    "decision tree": (tree.DecisionTreeRegressor(max_depth=3), Y_REG),
    "logistic regression": (linear_model.LogisticRegression(C=0.5), Y_CLASS),
    "ridge": (linear_model.Ridge(alpha=2.0), Y_REG),
    "support vector classifier": (svm.SVC(gamma=0.1), Y_CLASS),
    "k nearest neighbours": (neighbors.KNeighborsClassifier(n_neighbors=3), Y_CLASS),
    "multi-layer perceptron": (
        neural_network.MLPRegressor(hidden_layer_sizes=(4,), max_iter=20, random_state=0),
        Y_REG,
    ),
    "k-means": (cluster.KMeans(n_clusters=2, n_init=1, random_state=0), None),
    "scaler": (preprocessing.StandardScaler(), None),
    "pipeline": (
        pipeline.make_pipeline(
            impute.SimpleImputer(),
            preprocessing.StandardScaler(),
            linear_model.LogisticRegression(),
        ),
        Y_CLASS,
    ),
    "column transformer and forest": (
        pipeline.make_pipeline(
            compose.ColumnTransformer(
                [
                    ("onehot", preprocessing.OneHotEncoder(handle_unknown="ignore"), [0]),
                    ("scaled", preprocessing.MinMaxScaler(), [1, 2]),
                ]
            ),
            ensemble.ExtraTreesClassifier(n_estimators=3, random_state=0),
        ),
        Y_CLASS,
    ),
    "grid search": (
        model_selection.GridSearchCV(linear_model.LogisticRegression(), {"C": [0.1, 1.0]}, cv=2),
        Y_CLASS,
    ),
    "voting ensemble": (
        ensemble.VotingClassifier(
            [("lr", linear_model.LogisticRegression()), ("tree", tree.DecisionTreeClassifier())]
        ),
        Y_CLASS,
    ),
}


def _outputs(model: Any) -> Any:
    for method in ("predict_proba", "predict", "transform"):
        if hasattr(model, method):
            return getattr(model, method)(X)
    raise AssertionError(f"{model!r} neither predicts nor transforms")


@pytest.mark.parametrize("name", list(MODELS))
def test_fitted_models_read_back_and_predict_the_same(name: str, tmp_path: Path) -> None:
    model, target = MODELS[name]
    model = _fitted(sklearn.clone(model), target)
    SklearnMaterializer(artifact_at(tmp_path)).handle_return(model)
    back = SklearnMaterializer(artifact_at(tmp_path)).handle_input(BaseEstimator)
    assert type(back) is type(model)
    assert repr(back.get_params()) == repr(model.get_params())
    np.testing.assert_array_equal(_outputs(back), _outputs(model))
    with zipfile.ZipFile(tmp_path / "model.skops") as archive:
        assert "schema.json" in archive.namelist()


def test_an_unfitted_model_reads_back_unfitted(tmp_path: Path) -> None:
    artifact = artifact_at(tmp_path)
    SklearnMaterializer(artifact).handle_return(ensemble.RandomForestRegressor(max_depth=4))
    back = SklearnMaterializer(artifact_at(tmp_path)).handle_input(RegressorMixin)
    assert back.get_params()["max_depth"] == 4
    assert properties(artifact)["stepwire_fitted"] == "no"


def test_nothing_is_pickled_or_unpickled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was used")

    for name in ("dump", "dumps", "load", "loads", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    model = _fitted(ensemble.RandomForestClassifier(n_estimators=3, random_state=0), Y_CLASS)
    SklearnMaterializer(artifact_at(tmp_path)).handle_return(model)
    back = SklearnMaterializer(artifact_at(tmp_path)).handle_input(ClassifierMixin)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_a_model_records_its_class_params_and_versions(tmp_path: Path) -> None:
    artifact = artifact_at(tmp_path)
    model = _fitted(ensemble.RandomForestClassifier(n_estimators=7, random_state=3), Y_CLASS)
    SklearnMaterializer(artifact).handle_return(model)
    recorded = properties(artifact)
    assert recorded["stepwire_estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"
    params = dict(map(tuple, json.loads(recorded["stepwire_params"])))
    assert params["n_estimators"] == "7"
    assert params["random_state"] == "3"
    assert recorded["stepwire_fitted"] == "yes"
    assert recorded["stepwire_format"] == "skops"
    assert recorded["stepwire_summary"] == "RandomForestClassifier(n_estimators=7, random_state=3)"
    assert json.loads(recorded["stepwire_libraries"]) == {
        "scikit-learn": sklearn.__version__,
        "skops": sio_version(),
    }


def sio_version() -> str:
    import skops

    return str(skops.__version__)


def test_the_params_of_a_large_pipeline_are_bounded(tmp_path: Path) -> None:
    artifact = artifact_at(tmp_path)
    steps = [(f"scale_{i}", preprocessing.StandardScaler()) for i in range(60)]
    SklearnMaterializer(artifact).handle_return(pipeline.Pipeline(steps))
    recorded = properties(artifact)
    assert len(recorded["stepwire_params"]) <= 4000
    assert len(recorded["stepwire_summary"]) <= 200
    assert recorded["stepwire_estimator"] == "sklearn.pipeline.Pipeline"


def test_a_file_naming_an_untrusted_function_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SklearnMaterializer(artifact_at(tmp_path)).handle_return(preprocessing.StandardScaler())
    # What a tampered store could hold: a transformer whose function runs a command.
    evil = preprocessing.FunctionTransformer(func=os.system, kw_args={"command": "true"})
    (tmp_path / "model.skops").write_bytes(sio.dumps(evil))
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *args, **kwargs: calls.append(args))
    with pytest.raises(UntrustedTypesError, match=r"outside its trusted set: posix\.system\."):
        SklearnMaterializer(artifact_at(tmp_path)).handle_input(TransformerMixin)
    assert not calls


class HandMade(ClassifierMixin, BaseEstimator):
    """A user's own estimator: its class is untrusted until the user says otherwise."""

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias

    def fit(self, features: np.ndarray, target: np.ndarray) -> HandMade:
        self.classes_ = np.unique(target)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[(features[:, 0] + self.bias > 0.5).astype(int)])


HAND_MADE = f"{HandMade.__module__}.{HandMade.__qualname__}"


class TrustingMaterializer(SklearnMaterializer):
    """The documented way to trust more types: a subclass extends TRUSTED_TYPES."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = SklearnMaterializer.ASSOCIATED_TYPES
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = (*SklearnMaterializer.TRUSTED_TYPES, HAND_MADE)


class SkopsDefaultsOnly(SklearnMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = SklearnMaterializer.ASSOCIATED_TYPES
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = ()


def test_a_users_estimator_needs_a_materializer_that_trusts_it(tmp_path: Path) -> None:
    model = HandMade(bias=0.25).fit(X, Y_CLASS)
    with pytest.raises(UntrustedTypesError, match=f"refuses to write .*: {HAND_MADE}\\."):
        SklearnMaterializer(artifact_at(tmp_path / "refused")).handle_return(model)
    assert not (tmp_path / "refused").exists()

    TrustingMaterializer(artifact_at(tmp_path)).handle_return(model)
    back = TrustingMaterializer(artifact_at(tmp_path)).handle_input(ClassifierMixin)
    assert type(back) is HandMade
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    # The trust is the reading class's, never the file's.
    with pytest.raises(UntrustedTypesError, match=f"refuses to load .*: {HAND_MADE}\\."):
        SklearnMaterializer(artifact_at(tmp_path)).handle_input(ClassifierMixin)


def test_the_trusted_set_can_also_be_narrowed(tmp_path: Path) -> None:
    forest = _fitted(ensemble.RandomForestClassifier(n_estimators=2), Y_CLASS)
    SklearnMaterializer(artifact_at(tmp_path)).handle_return(forest)
    with pytest.raises(UntrustedTypesError, match=r"sklearn\.tree\._tree\.Tree"):
        SkopsDefaultsOnly(artifact_at(tmp_path)).handle_input(ClassifierMixin)
    SkopsDefaultsOnly(artifact_at(tmp_path / "linear")).handle_return(
        _fitted(linear_model.LogisticRegression(), Y_CLASS)
    )


@step
def train() -> ClassifierMixin:
    return HandMade().fit(X, Y_CLASS)


@step
def fit_three() -> Output(model=ClassifierMixin, regressor=RegressorMixin, any=BaseEstimator):
    raise NotImplementedError


def test_trust_is_chosen_per_step_with_the_writing_materializer() -> None:
    default = train()
    assert default.get_materializers() == {"output": SklearnMaterializer}
    chosen = train().with_return_materializers(TrustingMaterializer)
    assert chosen.get_materializers() == {"output": TrustingMaterializer}


class OnlyAMixin(ClassifierMixin):
    pass


def test_a_mixin_that_is_no_estimator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StepInterfaceError, match="OnlyAMixin only has the mixins"):
        SklearnMaterializer(artifact_at(tmp_path)).handle_return(OnlyAMixin())


def _claim_written_by(path: Path, library: str, version: str) -> None:
    document = json.loads((path / "metadata.json").read_text())
    document["libraries"][library] = version
    (path / "metadata.json").write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("library", "installed"), [("scikit-learn", sklearn.__version__), ("skops", sio_version())]
)
def test_a_model_from_a_newer_release_is_refused_naming_both(
    library: str, installed: str, tmp_path: Path
) -> None:
    SklearnMaterializer(artifact_at(tmp_path)).handle_return(linear_model.Ridge())
    major, minor = (int(part) for part in installed.split(".")[:2])
    # A newer minor release counts: scikit-learn models only load in the minor
    # release that wrote them, and skops is 0.x.
    newer = f"{major}.{minor + 1}.0"
    _claim_written_by(tmp_path, library, newer)
    with pytest.raises(ArtifactVersionError) as raised:
        SklearnMaterializer(artifact_at(tmp_path)).handle_input(RegressorMixin)
    assert f"written with {library} {newer}, newer than the {library} {installed}" in str(
        raised.value
    )


def test_registry_finds_the_estimator_materializer_by_type_and_annotation() -> None:
    registry = default_materializer_registry
    for kind in (
        ensemble.RandomForestClassifier,
        pipeline.Pipeline,
        svm.SVC,
        cluster.KMeans,
        preprocessing.StandardScaler,
        BaseEstimator,
        ClassifierMixin,
        RegressorMixin,
        ClusterMixin,
        TransformerMixin,
        HandMade,
    ):
        assert registry[kind] is SklearnMaterializer, kind
        assert type_registry.get_artifact_type(kind) == (ModelArtifact,)


def test_tutorial_annotations_declare_model_artifacts() -> None:
    assert fit_three().get_materializers(ensure_complete=True) == {
        "model": SklearnMaterializer,
        "regressor": SklearnMaterializer,
        "any": SklearnMaterializer,
    }


class UsersModel(BaseEstimator):
    pass


class UsersModelMaterializer(BuiltInMaterializer):
    """A user's materializer for their own estimator class."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (UsersModel,)


class UsersDerivedModel(UsersModel):
    pass


class UsersClassifier(ClassifierMixin, UsersModel):
    pass


def test_a_users_materializer_wins_over_the_estimator_one() -> None:
    registry = default_materializer_registry
    assert registry[UsersModel] is UsersModelMaterializer
    # UsersModel is nearer than BaseEstimator, which it derives from.
    assert registry[UsersDerivedModel] is UsersModelMaterializer
    # ClassifierMixin is no base of UsersModel: both match, and a choice is asked for.
    with pytest.raises(StepInterfaceError, match="Several materializers match"):
        registry[UsersClassifier]


def test_materializer_subclasses_are_not_registered_over_the_builtin() -> None:
    materializer: type[BaseMaterializer] = default_materializer_registry[svm.SVR]
    assert materializer is SklearnMaterializer


def test_a_model_in_an_object_store_reads_back(request: pytest.FixtureRequest) -> None:
    artifact = ModelArtifact()
    artifact.uri = f"memory://stepwire-tests/{request.node.name}"
    model = _fitted(ensemble.RandomForestClassifier(n_estimators=2, random_state=0), Y_CLASS)
    SklearnMaterializer(artifact).handle_return(model)
    back = SklearnMaterializer(artifact).handle_input(ClassifierMixin)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
