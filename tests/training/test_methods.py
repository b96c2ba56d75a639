"""The method registry: every method is one recipe, and a new one needs a recipe, its part, one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.main import create_app
from app.settings import Settings
from training.dataset import TrainingSet
from training.methods import METHODS, Method, configure, get_method, register
from training.train import train_bundle
from xmlc.batch import Batch
from xmlc.bundle import BundleError
from xmlc.cli import app as cli
from xmlc.evaluation import evaluate_model
from xmlc.loader import load_model
from xmlc.model import Model
from xmlc.parts import PARTS
from xmlc.topk import top_k

REVIEW_METHODS = {
    "tree",
    "parabel",
    "bonsai",
    "tree+ranker",
    "hnsw+ranker",
    "plst",
    "cplst",
    "svd",
    "leml",
    "attentionxml",
    "xtransformer",
    "ensemble",
}


def test_every_method_is_registered_with_its_parts() -> None:
    assert set(METHODS) == REVIEW_METHODS
    assert next(iter(METHODS)) == "tree+ranker"  # the default comes first in --method's help
    for method in METHODS.values():
        assert method.summary and method.params is not None
        for part in method.parts:
            assert part.kind in PARTS.kinds(part.role)


def test_configure_sets_a_setting_wherever_the_method_keeps_it() -> None:
    p = configure("tree+ranker", {"branching": 4, "epochs": 2, "dim": 32, "title_weight": 0.0})
    assert p.model.tree.cluster.branching == 4 and p.model.tree.n_trees == 3
    assert (p.model.ranker.epochs, p.model.ranker.dim, p.featurizer.title_weight) == (2, 32, 0.0)
    x = configure("xtransformer", {"epochs": 3})
    assert x.model.matcher.epochs == 3 and x.model.ranker.epochs == 3
    assert configure("plst", {"dim": 16}).model.dim == 16
    assert configure("tree").model == METHODS["tree"].params  # presets are not changed
    with pytest.raises(ValueError, match="branching does not apply to method 'attentionxml'"):
        configure("attentionxml", {"branching": 4})
    assert configure("attentionxml", {"branching": 4}, strict=False).model == METHODS["attentionxml"].params
    with pytest.raises(ValueError, match="unknown method 'magic'; choose one of tree\\+ranker"):
        get_method("magic")


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Method("tree", "another tree", None, lambda data, p: None))  # type: ignore[arg-type,return-value]


# ----------------------------------------------------------------- a new method, defined here only


class CentroidShortlister:
    """Labels by cosine to the mean TF-IDF row of their training documents (a toy nearest centroid)."""

    kind: ClassVar[str] = "test-centroid"
    role: ClassVar[str] = "shortlister"
    needs_ranker: ClassVar[bool] = False
    FILE = "centroids.npy"

    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = centroids.astype(np.float32)

    @property
    def n_labels(self) -> int:
        return self.centroids.shape[0]

    @property
    def n_features(self) -> int:
        return self.centroids.shape[1]

    def shortlist(self, batch: Batch, depth: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(np.asarray(batch.features() @ self.centroids.T), depth)

    def save(self, folder: Path) -> list[str]:
        np.save(folder / self.FILE, self.centroids, allow_pickle=False)
        return [self.FILE]

    def meta(self) -> dict[str, Any]:
        return {"n_labels": self.n_labels}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> CentroidShortlister:
        return cls(np.load(folder / cls.FILE, allow_pickle=False))


@dataclass(frozen=True)
class CentroidParams:
    normalise: bool = True


def fit_centroids(data: TrainingSet, p: CentroidParams) -> Model:
    C = sp.csr_matrix(data.Y.T @ data.X).toarray()
    if p.normalise:
        C /= np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
    return data.pipeline(CentroidShortlister(C))


@pytest.fixture
def centroid_method() -> Iterator[Method]:
    method = register(
        Method("test-centroid", "nearest centroid", CentroidParams(), fit_centroids, (CentroidShortlister,))
    )
    yield method
    del METHODS[method.name]
    PARTS.unregister(CentroidShortlister)


def test_a_new_method_trains_saves_loads_serves_and_evaluates(
    centroid_method: Method, corpus_files: dict[str, Path], corpus, tmp_path: Path
) -> None:
    out = tmp_path / "centroid"
    train_bundle(corpus_files["train"], out, configure("test-centroid"), n_jobs=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "test-centroid" and manifest["kind"] == "test-centroid"
    assert manifest["shortlister"] == {"kind": "test-centroid", "n_labels": 64, "files": ["centroids.npy"]}
    assert manifest["train_params"]["model"] == {"normalise": True}

    _, test, _ = corpus
    model = load_model(out)
    report, _ = evaluate_model(model, [d.doc for d in test], [list(d.labels) for d in test])
    assert report.to_dict()["P@1"] > 60  # 64 labels: chance is under 2%

    with TestClient(create_app(Settings(bundle=out, redis_url=None))) as client:  # type: ignore[arg-type]
        r = client.post("/predict", json={"text": test[0].text, "title": test[0].title, "k": 3})
        assert r.status_code == 200 and len(r.json()["labels"]) == 3
        assert client.get("/model").json()["method"] == "test-centroid"

    r = CliRunner().invoke(cli, ["eval", "--bundle", str(out), "--data", str(corpus_files["test"]), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["P@1"] == pytest.approx(report.to_dict()["P@1"])

    PARTS.unregister(CentroidShortlister)  # a build that does not know the part refuses the bundle by name
    with pytest.raises(BundleError, match="unknown shortlister kind 'test-centroid'"):
        load_model(out)
    PARTS.register(CentroidShortlister)
