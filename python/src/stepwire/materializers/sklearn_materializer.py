"""Materializer for scikit-learn estimators and pipelines, in skops' secure format; never pickle.

skops writes an estimator as a zip of JSON and ``.npy`` files and, when loading,
constructs only the types it is told to trust: it never runs code a file names. The
rule here:

* a file is loaded only if every type it names is trusted, either by skops itself (its
  defaults: scikit-learn's estimators, numpy and scipy types, builtins) or by the
  materializer's :attr:`SklearnMaterializer.TRUSTED_TYPES`, whose default
  :data:`DEFAULT_TRUSTED_TYPES` adds the scikit-learn internals that common
  estimators hold (tree structures, neighbour search trees, optimisers); otherwise
  loading fails with an error that names the untrusted types;
* what the file says it contains is never a reason to trust it: the trusted set comes
  from the code of the materializer class the artifact names;
* the same check runs when a model is written, so a model that could not be read back
  fails the step that produces it, not the one that consumes it.

To trust more types, subclass and extend the set, then choose the subclass for the
step that writes the model; the step that reads it uses the class the artifact
records::

    class MyModelMaterializer(SklearnMaterializer):
        ASSOCIATED_TYPES = SklearnMaterializer.ASSOCIATED_TYPES
        TRUSTED_TYPES = (*SklearnMaterializer.TRUSTED_TYPES, "my_package.MyTransformer")

    trainer = train().with_return_materializers(MyModelMaterializer)

A subclass with ``TRUSTED_TYPES = ()`` trusts only skops' defaults.

Only imported when a step's signature or value involves a scikit-learn type; skops
only when a model is written or read.
"""

from __future__ import annotations

import zipfile
from typing import Any, ClassVar

from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClusterMixin,
    RegressorMixin,
    TransformerMixin,
)

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import ModelArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import artifact_metadata
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import register_builtin

#: File holding the model under the artifact URI.
DEFAULT_FILENAME = "model.skops"
_EXTRA = "sklearn"
#: scikit-learn's models are only guaranteed to load with the minor release that
#: wrote them; skops is 0.x, where a minor release may change the format.
_VERSION_PARTS = {"scikit-learn": 2, "skops": 2}

#: Types skops does not trust by default but stepwire does: scikit-learn's own
#: internals that the state of common estimators holds. Each only stores arrays and
#: numbers; loading one constructs it from them, nothing in the file is called.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    # Decision trees, random forests, extra trees, gradient boosting, AdaBoost,
    # isolation forests.
    "sklearn.tree._tree.Tree",
    # Histogram gradient boosting.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # Nearest neighbours.
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    # Multi-layer perceptrons.
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    # Stacking and voting ensembles, calibrated classifiers.
    "sklearn.utils._bunch.Bunch",
    # Metadata routing requests (plain records of which parameters go where) that
    # scikit-learn 1.7's search and meta-estimators keep once fitted.
    "sklearn.utils._metadata_requests.MetadataRequest",
    "sklearn.utils._metadata_requests.MethodMetadataRequest",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    # Search over parameters.
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.metrics._scorer._PassthroughScorer",
    # Univariate feature selection's scoring functions.
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._univariate_selection.chi2",
    # The dtype parameter of imputers and discretizers.
    "numpy.dtype",
)


class UntrustedTypesError(StepInterfaceError):
    """A model file names types outside the materializer's trusted set."""


def _skops_io() -> Any:
    return artifact_metadata.require("skops.io", _EXTRA)


def _running_versions() -> dict[str, str]:
    import sklearn

    skops = artifact_metadata.require("skops", _EXTRA)
    return {"scikit-learn": str(sklearn.__version__), "skops": str(skops.__version__)}


def _is_fitted(model: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    except TypeError:  # not an estimator check_is_fitted understands
        return False
    return True


class SklearnMaterializer(BaseMaterializer):
    """Stores a scikit-learn estimator (anything that is a ``BaseEstimator``) with skops.

    Found for every estimator and pipeline by its base classes, and for outputs
    annotated with ``BaseEstimator`` or the ``ClassifierMixin``, ``RegressorMixin``,
    ``ClusterMixin`` and ``TransformerMixin`` mixins. Each artifact records in ML
    Metadata the estimator's class, its parameters (bounded), whether it is fitted,
    and the scikit-learn and skops versions that wrote it.

    Attributes:
        TRUSTED_TYPES: Fully qualified names of the types trusted on top of skops'
            defaults; see the module docstring for how to extend them.
        COMPRESSION: ``zipfile`` compression of the skops archive.
        COMPRESSLEVEL: Its level; deflate at level 1 makes a random forest's file
            about four times smaller than storing it, for about twice the time.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (
        BaseEstimator,
        ClassifierMixin,
        RegressorMixin,
        ClusterMixin,
        TransformerMixin,
    )
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (ModelArtifact,)
    # Registered by register_builtin below, after any user materializer of these types.
    SKIP_REGISTRATION = True
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = DEFAULT_TRUSTED_TYPES
    COMPRESSION: ClassVar[int] = zipfile.ZIP_DEFLATED
    COMPRESSLEVEL: ClassVar[int | None] = 1

    def _check_trusted(self, blob: bytes, doing: str) -> list[str]:
        """Refuses a skops file naming types neither skops nor this class trusts.

        Returns:
            The types skops does not trust by default that the file names, all of
            them trusted by this class: skops wants them listed to load the file.
        """
        # Reads the file's schema only: nothing is constructed yet.
        named: list[str] = _skops_io().get_untrusted_types(data=blob)
        untrusted = sorted(set(named) - set(self.TRUSTED_TYPES))
        if untrusted:
            raise UntrustedTypesError(
                f"{type(self).__name__} refuses to {doing} a model naming types outside "
                f"its trusted set: {', '.join(untrusted)}. If you trust them, write the "
                f"model with a subclass of {type(self).__name__} that adds them to "
                "TRUSTED_TYPES (see stepwire.materializers.sklearn_materializer)."
            )
        return named

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored estimator, if every type its file names is trusted.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The estimator.

        Raises:
            ArtifactVersionError: If a newer scikit-learn or skops wrote it.
            UntrustedTypesError: If the file names types outside the trusted set.
        """
        super().handle_input(data_type)
        artifact_metadata.read_metadata(
            self.artifact.uri, _running_versions(), formats=("skops",), parts=_VERSION_PARTS
        )
        blob = io_utils.read_bytes(io_utils.join(self.artifact.uri, DEFAULT_FILENAME))
        trusted = self._check_trusted(blob, "load")
        return _skops_io().loads(blob, trusted=trusted)

    def handle_return(self, data: Any) -> None:
        """Writes the estimator.

        Args:
            data: The estimator.

        Raises:
            StepInterfaceError: If it is not a ``BaseEstimator``.
            UntrustedTypesError: If it holds types outside the trusted set, which the
                step reading it would refuse.
        """
        super().handle_return(data)
        if not isinstance(data, BaseEstimator):
            raise StepInterfaceError(
                f"{type(self).__name__} stores scikit-learn estimators (BaseEstimator "
                f"subclasses); {type(data).__qualname__} only has the mixins."
            )
        blob: bytes = _skops_io().dumps(
            data, compression=self.COMPRESSION, compresslevel=self.COMPRESSLEVEL
        )
        self._check_trusted(blob, "write")
        io_utils.write_bytes(io_utils.join(self.artifact.uri, DEFAULT_FILENAME), blob)
        libraries = _running_versions()
        artifact_metadata.write_metadata(self.artifact.uri, "skops", libraries)
        self._record(data, libraries)

    def _record(self, model: Any, libraries: dict[str, str]) -> None:
        cls = type(model)
        params = model.get_params(deep=False)
        pairs = [(name, repr(value)) for name, value in sorted(params.items())]
        # scikit-learn's repr shows only the parameters that differ from the defaults.
        summary = " ".join(repr(model).split())
        artifact_metadata.record_properties(
            self.artifact,
            {
                "format": "skops",
                "estimator": f"{cls.__module__}.{cls.__qualname__}",
                "params": artifact_metadata.bounded_pairs(pairs, len(pairs)),
                "fitted": "yes" if _is_fitted(model) else "no",
                "libraries": artifact_metadata.libraries_json(libraries),
                "summary": artifact_metadata.clip(summary, artifact_metadata.MAX_SUMMARY_CHARS),
            },
        )


register_builtin(SklearnMaterializer)
