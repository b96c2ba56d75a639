"""AttentionXML-like model: BiLSTM over word embeddings, label-wise attention, trained over a shallow tree.

The label tree has one wide level of clusters (balanced k-means over PIFA, as for the other trees) above
the labels. One shared BiLSTM encodes the document; each level has its own attention query, output
vector and bias per node. Every step trains level 1 over all clusters and level 2 over the labels of the
clusters that level 1 ranks best for that document (plus the true ones, as AttentionXML does), so level 2
learns on the candidates it will see at prediction time.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from model_export.attention_export import export_attention
from training.clustering import cluster_members
from training.dataset import TrainingSet
from training.optim import clipped_step
from training.params import AttentionParams
from xmlc.attention import AttentionConfig, AttentionShortlister, pad_word_ids
from xmlc.topk import label_clusters

MASKED = -1e4  # attention score of padding positions
PARITY_DOCS = 32  # training documents whose scores check the export


class AttentionNet(nn.Module):
    def __init__(self, n_words: int, level_sizes: tuple[int, int], p: AttentionParams) -> None:
        super().__init__()
        d = 2 * p.hidden
        self.embed = nn.Embedding(n_words + 1, p.emb_dim, padding_idx=0)
        self.drop = nn.Dropout(p.dropout)
        self.lstm = nn.LSTM(p.emb_dim, p.hidden, batch_first=True, bidirectional=True)
        queries, outs, biases = [], [], []
        for n in level_sizes:
            q, o, b = nn.Embedding(n, d), nn.Embedding(n, d), nn.Embedding(n, 1)
            nn.init.normal_(q.weight, std=0.05)
            nn.init.normal_(o.weight, std=0.05)
            nn.init.constant_(b.weight, -3.0)  # most nodes are negative
            queries.append(q)
            outs.append(o)
            biases.append(b)
        self.query = nn.ModuleList(queries)
        self.out = nn.ModuleList(outs)
        self.bias = nn.ModuleList(biases)

    def encode(self, word_ids: torch.Tensor) -> torch.Tensor:
        """(docs x words) -> (docs x words x 2*hidden)."""
        return self.lstm(self.drop(self.embed(word_ids)))[0]

    def attend(
        self, level: int, hidden: torch.Tensor, word_ids: torch.Tensor, cand: torch.Tensor
    ) -> torch.Tensor:
        """Logits (docs x candidates): each candidate pools the hidden states with its own attention."""
        s = torch.einsum("btd,bcd->bct", hidden, self.query[level](cand))
        s = s.masked_fill((word_ids == 0).unsqueeze(1), MASKED)
        z = torch.einsum("bct,btd->bcd", torch.softmax(s, dim=-1), hidden)
        return (z * self.out[level](cand)).sum(-1) + self.bias[level](cand).squeeze(-1)


def word_map(n_vocabulary: int, sequences: list[np.ndarray], max_words: int) -> np.ndarray:
    """Vocabulary id -> model word id (1..n, by corpus frequency; 0 for words the model leaves out)."""
    freq = np.bincount(np.concatenate(sequences), minlength=n_vocabulary) if sequences else np.zeros(0)
    keep = np.argsort(-freq, kind="stable")[: min(max_words, int((freq > 0).sum()))]
    out = np.zeros(n_vocabulary, dtype=np.int64)
    out[keep] = np.arange(1, len(keep) + 1)
    return out


def train_attention(
    word_ids: np.ndarray,
    Y: sp.csr_matrix,
    members: np.ndarray,
    n_words: int,
    p: AttentionParams,
    n_threads: int = 0,
    progress: bool = True,
) -> AttentionNet:
    """Fit both levels jointly; ``word_ids`` are padded model word ids (docs x max_len)."""
    if n_threads:
        torch.set_num_threads(n_threads)
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    Y = Y.tocsr()
    n_clusters, n_labels = members.shape[0], Y.shape[1]
    cluster_of = label_clusters(members, n_labels)
    net = AttentionNet(n_words, (n_clusters, n_labels), p)
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    rows_all: np.ndarray = np.arange(word_ids.shape[0])
    if p.max_docs and p.max_docs < len(rows_all):
        rows_all = np.sort(rng.choice(rows_all, p.max_docs, replace=False))
    n = len(rows_all)
    steps = p.epochs * math.ceil(n / p.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=steps, pct_start=0.1)
    every = torch.arange(n_clusters)
    padded_members = np.vstack([members, np.full((1, members.shape[1]), -1)])  # row n_clusters: nothing
    bar = tqdm(total=steps, desc="attention", unit="batch", disable=not progress)
    net.train()
    for _ in range(p.epochs):
        t0, total = time.perf_counter(), 0.0
        order = rows_all[rng.permutation(n)]
        for start in range(0, n, p.batch_size):
            rows = order[start : start + p.batch_size]
            ids = torch.from_numpy(word_ids[rows])
            truth = [Y.indices[Y.indptr[r] : Y.indptr[r + 1]] for r in rows]
            true_clusters = [np.unique(cluster_of[t]) for t in truth]
            c_target = np.zeros((len(rows), n_clusters), dtype=np.float32)
            for i, cs in enumerate(true_clusters):
                c_target[i, cs] = 1.0
            hidden = net.encode(ids)
            c_logit = net.attend(0, hidden, ids, every.expand(len(rows), -1))
            loss = F.binary_cross_entropy_with_logits(c_logit, torch.from_numpy(c_target))
            # Level 2 candidates: the true clusters, then the best predicted ones, padded with "nothing".
            top = torch.topk(c_logit.detach(), min(p.train_beam, n_clusters), dim=1).indices.numpy()
            width = p.train_beam + max(len(cs) for cs in true_clusters)
            chosen = np.full((len(rows), width), n_clusters, dtype=np.int64)
            for i, cs in enumerate(true_clusters):
                picked = list(dict.fromkeys([*cs.tolist(), *top[i].tolist()]))[:width]
                chosen[i, : len(picked)] = picked
            cand = padded_members[chosen].reshape(len(rows), -1)
            valid = cand >= 0
            l_target = np.zeros(cand.shape, dtype=np.float32)
            for i, t in enumerate(truth):
                l_target[i] = np.isin(cand[i], t) & valid[i]
            l_logit = net.attend(1, hidden, ids, torch.from_numpy(np.maximum(cand, 0)))
            l_loss = F.binary_cross_entropy_with_logits(
                l_logit, torch.from_numpy(l_target), weight=torch.from_numpy(valid.astype(np.float32))
            )
            loss = loss + l_loss
            total += clipped_step(loss, net.parameters(), opt, sched, 5.0) * len(rows)
            bar.update(1)
        bar.set_postfix(loss=f"{total / n:.4f}", epoch_s=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    return net.eval()


def fit_attention(data: TrainingSet, params: AttentionParams) -> AttentionShortlister:
    """Word ids from the featurizer's vocabulary, the one-level PIFA tree, both levels' training, export."""
    sequences = [data.featurizer.word_ids(d.body) for d in data.docs]
    mapping = word_map(data.featurizer.dim, sequences, params.max_words)
    word_ids = pad_word_ids(sequences, mapping, params.max_len)
    members = cluster_members(data.X, data.Y, params.n_clusters, params.seed)
    n_words = int(mapping.max(initial=0))
    net = train_attention(word_ids, data.Y, members, n_words, params, data.n_jobs, data.progress)
    config = AttentionConfig(
        max_len=params.max_len,
        n_words=n_words,
        n_clusters=members.shape[0],
        n_labels=data.Y.shape[1],
        beam=params.beam,
    )
    return export_attention(net, mapping, members, config, word_ids[:PARITY_DOCS])
