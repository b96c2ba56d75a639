"""Ranker export: the runtime `OnnxRanker` computes what the torch network computes, or export fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from model_export.onnx_graph import OPSET, ParityError  # noqa: E402
from model_export.ranker_export import export_ranker, parity_check  # noqa: E402
from training.ranker_model import RankerNet  # noqa: E402
from xmlc.ranker import OnnxRanker  # noqa: E402


def random_inputs(n_docs: int, n_features: int, n_labels: int, n_cand: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = sp.random(n_docs, n_features, density=0.05, format="csr", dtype=np.float32, random_state=seed)
    X.data = rng.random(X.nnz).astype(np.float32)
    cand = rng.integers(0, n_labels, size=(n_docs, n_cand)).astype(np.int64)
    prior = rng.random((n_docs, n_cand)).astype(np.float32)
    return X, cand, prior


def _net(n_features: int = 300, n_labels: int = 40, use_prior: bool = True) -> RankerNet:
    torch.manual_seed(0)
    net = RankerNet(n_features, n_labels, 24, use_prior)
    with torch.no_grad():  # move away from the init so that every term matters
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize("use_prior", [True, False])
def test_export_parity_on_other_shapes(tmp_path: Path, use_prior: bool) -> None:
    net = _net(use_prior=use_prior)
    X, cand, prior = random_inputs(8, 300, 40, 5)
    ranker = export_ranker(net, 5, X, cand, prior)
    assert ranker.export_info["parity_max_abs_diff"] <= 1e-4 and ranker.export_info["opset"] == OPSET
    assert sorted(ranker.save(tmp_path)) == [
        "ranker.json",
        "ranker_feature_table.npy",
        "ranker_label_bias.npy",
        "ranker_label_vectors.npy",
        "scorer.onnx",
    ]
    model = onnx.load(str(tmp_path / "scorer.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET
    # Saved and loaded back; dynamic axes: other batch, document-length and candidate sizes.
    again = OnnxRanker.load(tmp_path, ranker.meta())
    assert again.config == ranker.config and again.export_info == ranker.export_info
    X2, cand2, prior2 = random_inputs(3, 300, 40, 17, seed=5)
    assert parity_check(net, again, X2, cand2, prior2) <= 1e-4


def test_padding_candidates_score_minus_one() -> None:
    net = _net()
    X, cand, prior = random_inputs(4, 300, 40, 6)
    ranker = export_ranker(net, 6, X, cand, prior)
    cand[:, -2:] = -1
    probs = ranker.score(ranker.encode(X), cand, prior)
    assert np.all(probs[:, -2:] == -1.0) and np.all((probs[:, :-2] > 0) & (probs[:, :-2] < 1))


def test_parity_check_refuses_a_graph_that_differs() -> None:
    net = _net()
    X, cand, prior = random_inputs(8, 300, 40, 5)
    ranker = export_ranker(net, 5, X, cand, prior)
    with torch.no_grad():
        net.label_bias.weight.add_(0.5)
    with pytest.raises(ParityError, match="ranker"):
        parity_check(net, ranker, X, cand, prior)


def test_no_graph_grows_with_the_labels(tmp_path: Path) -> None:
    """The label table is an array beside the scorer: three million labels export, load and score, and
    the graphs are as large as with forty (the old scorer held the table: over 2 GiB near 2.09M labels
    at 256 dimensions)."""
    sizes = {}
    for n_labels in (40, 3_000_000):
        torch.manual_seed(0)
        net = RankerNet(300, n_labels, 4).eval()
        X, cand, prior = random_inputs(6, 300, n_labels, 5)
        ranker = export_ranker(net, 5, X, cand, prior)
        folder = tmp_path / str(n_labels)
        folder.mkdir()
        ranker.save(folder)
        sizes[n_labels] = (folder / "scorer.onnx").stat().st_size
        again = OnnxRanker.load(folder, ranker.meta())
        assert again.label_vectors is not None and again.label_vectors.shape == (n_labels, 4)
        assert isinstance(again.label_vectors.base, np.memmap)  # memory-mapped, not read into memory
        assert isinstance(again.encoder, np.ndarray) and isinstance(again.encoder.base, np.memmap)
        assert parity_check(net, again, X, cand, prior) <= 1e-4
    assert sizes[3_000_000] == sizes[40]


class _LegacyEncoder(torch.nn.Module):
    """The encoder graph of bundles before the term table: padded ids and values -> document vectors."""

    def __init__(self, net: RankerNet) -> None:
        super().__init__()
        self.register_buffer("table", net.features.weight.detach().to(torch.float16))

    def forward(self, feat_ids: torch.Tensor, feat_vals: torch.Tensor) -> torch.Tensor:
        return (self.table[feat_ids].to(torch.float32) * feat_vals.unsqueeze(-1)).sum(1)


def test_bundles_with_an_encoder_graph_still_load_and_upgrade(tmp_path: Path) -> None:
    """A ranker saved with ``encoder.onnx`` loads and encodes as the compiled encoder does; upgraded
    (`with_term_table`), it saves the table instead and scores the same."""
    from dataclasses import replace

    from model_export.onnx_graph import to_onnx
    from model_export.ranker_export import with_term_table
    from xmlc.onnx_session import OnnxSession

    net = _net()
    X, cand, prior = random_inputs(8, 300, 40, 5)
    new = export_ranker(net, 5, X, cand, prior)
    graph = to_onnx(
        _LegacyEncoder(net),
        (torch.zeros((2, 3), dtype=torch.int64), torch.ones((2, 3), dtype=torch.float32)),
        {"feat_ids": {0: "batch", 1: "terms"}, "feat_vals": {0: "batch", 1: "terms"}},
        {"doc_vec": {}},
    )
    config = replace(new.config, feature_table=False)
    old = OnnxRanker(OnnxSession(graph), new.scorer, config, None, new.label_vectors, new.label_bias)
    assert "encoder.onnx" in old.save(tmp_path)
    loaded = OnnxRanker.load(tmp_path, old.meta())
    assert isinstance(loaded.encoder, OnnxSession)
    np.testing.assert_allclose(loaded.encode(X), new.encode(X), atol=1e-5)
    upgraded = with_term_table(loaded)
    assert upgraded.config == new.config
    np.testing.assert_array_equal(np.asarray(upgraded.encoder), np.asarray(new.encoder))
    assert parity_check(net, upgraded, X, cand, prior) <= 1e-4
