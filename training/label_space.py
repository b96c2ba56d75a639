"""Label-space methods of the review's compressed-sensing and linear-algebra families.

Each learns a linear document map ``h = x U`` (features -> rank r) and label vectors ``V`` (labels x r) so
that ``h . v_l`` scores label l. They differ in where V comes from and how U is fitted:

- ``plst``: V = top right singular vectors of the label matrix Y; U regresses x onto the projected targets
  ``y V`` (squared loss); decoding is nearest labels by inner product (Tai & Lin 2012).
- ``cplst``: the conditional variant: V = top right singular vectors of the part of Y that the features
  can predict, ``P Y`` with P the projection on the top principal components of X (Chen & Lin 2012).
- ``svd``: V = singular vectors scaled by their singular values, kept fixed; U and label biases are fitted
  one-vs-all with binary cross-entropy over every label.
- ``leml``: W = U V^T fitted by alternating minimisation of ``||Y - X U V^T||^2 + lam (||U||^2 + ||V||^2)``:
  V in closed form given H = X U, then U by gradient epochs given V (Yu et al. 2014).

The result is a `RankerNet` without the shortlister's score: its label vectors go into the HNSW
shortlister and its encoder and scorer into the ONNX graphs, exactly like ``hnsw+ranker``
(`training.two_stage.index_and_export`).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.extmath import randomized_svd
from torch.nn import functional as F
from tqdm import tqdm

from training.params import LabelSpaceParams
from training.ranker_model import RankerNet, bag_tensors
from training.ranker_train import batch_size_for, one_vs_all_loss


def label_basis(
    X: sp.csr_matrix, Y: sp.csr_matrix, params: LabelSpaceParams
) -> tuple[np.ndarray, np.ndarray]:
    """(labels x r) orthonormal label directions and their singular values, per ``params.kind``."""
    r = min(params.dim, min(Y.shape) - 1) if min(Y.shape) > 1 else 1
    target: sp.csr_matrix | np.ndarray = Y.astype(np.float32)
    if params.kind == "cplst":
        k = max(1, min(params.x_components, min(X.shape) - 1))
        U_x, _, _ = randomized_svd(X, k, random_state=params.seed)
        # P Y = U_x (U_x^T Y); its right singular vectors are those of the small k x L matrix U_x^T Y.
        target = np.asarray(Y.T @ U_x, dtype=np.float32).T
        r = min(r, k)  # the predictable part has rank at most k
    _, s, Vt = randomized_svd(target, r, random_state=params.seed)
    return Vt.T.astype(np.float32), s.astype(np.float32)


def _net(n_features: int, V: np.ndarray) -> RankerNet:
    net = RankerNet(n_features, V.shape[0], V.shape[1], use_prior=False)
    with torch.no_grad():
        net.labels.weight.copy_(torch.from_numpy(V))
        net.label_bias.weight.zero_()
        net.features.weight.zero_()
    net.labels.weight.requires_grad_(False)  # fixed in the gradient steps (LEML updates it in closed form)
    return net


def fit_label_space(
    X: sp.csr_matrix, Y: sp.csr_matrix, params: LabelSpaceParams, n_threads: int = 0, progress: bool = True
) -> RankerNet:
    """Fit U (and V for LEML, biases for SVD) on (documents, label sets); returns the network."""
    if n_threads:
        torch.set_num_threads(n_threads)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    X = X.tocsr().astype(np.float32)
    Y = Y.tocsr().astype(np.float32)
    V, s = label_basis(X, Y, params)
    if params.kind == "svd":
        V = V * (s / s[0])[None, :]
    net = _net(X.shape[1], V)
    trainable = [net.features.weight]
    if params.kind == "svd":
        trainable.append(net.label_bias.weight)
    optim = torch.optim.SparseAdam(trainable, lr=params.lr)
    n = X.shape[0]
    batch_size = batch_size_for(n, params.batch_size)
    bar = tqdm(total=params.epochs, desc=params.kind, unit="epoch", disable=not progress)
    for _ in range(params.epochs):
        t0, total = time.perf_counter(), 0.0
        order = rng.permutation(n)
        V_np = net.labels.weight.detach().numpy()
        gram = torch.from_numpy(V_np.T @ V_np)  # r x r: the squared loss without a (docs x labels) matrix
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            ids, offsets, values = bag_tensors(X, rows)
            h = net.encode_bag(ids, offsets, values)
            if params.kind == "svd":

                def logits_of(some: torch.Tensor | None, h: torch.Tensor = h) -> torch.Tensor:
                    return net.score_all(h) if some is None else net.score_some(h, some)

                loss = one_vs_all_loss(logits_of, Y[rows], params.n_negatives, rng)
            else:
                loss = squared_loss(h, Y[rows], V_np, gram) / len(rows)
                if params.kind == "leml":  # L2 on the rows of U this batch touches (sparse gradient)
                    touched = F.embedding(torch.unique(ids), net.features.weight, sparse=True)
                    loss = loss + params.lam * (touched**2).sum()
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(rows)
        if params.kind == "leml":
            _leml_v_step(net, X, Y, params.lam)
        bar.update(1)
        bar.set_postfix(loss=f"{total / n:.4f}", epoch_s=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    net.eval()
    return net


def squared_loss(h: torch.Tensor, Y_rows: sp.csr_matrix, V: np.ndarray, gram: torch.Tensor) -> torch.Tensor:
    """``||h V^T - Y||^2`` summed over the batch, as ``h G h^T - 2 h . (y V) + |y|`` with ``G = V^T V``:
    O(r^2 + labels of the document x r) a document instead of O(all labels x r)."""
    yV = torch.from_numpy(np.asarray(Y_rows @ V, dtype=np.float32))
    return ((h @ gram) * h).sum() - 2 * (h * yV).sum() + float(Y_rows.nnz)


@torch.no_grad()
def _leml_v_step(net: RankerNet, X: sp.csr_matrix, Y: sp.csr_matrix, lam: float) -> None:
    """V = Y^T H (H^T H + lam n I)^{-1}: the exact minimiser over V for the current U.

    H (documents x r) is encoded in chunks; H^T H is summed in float64 chunk by chunk and Y^T H kept in
    float32, so memory stays O((documents + labels) x r).
    """
    n = X.shape[0]
    H = np.empty((n, net.dim), dtype=np.float32)
    gram = lam * n * np.eye(net.dim)
    for start in range(0, n, 4096):
        rows = np.arange(start, min(start + 4096, n))
        H[rows] = net.encode_bag(*bag_tensors(X, rows)).numpy()
        block = H[rows].astype(np.float64)
        gram += block.T @ block
    YH = np.asarray(Y.T @ H, dtype=np.float32)  # labels x r
    V = (YH @ np.linalg.inv(gram).astype(np.float32)).astype(np.float32)  # gram is symmetric
    net.labels.weight.copy_(torch.from_numpy(V))
