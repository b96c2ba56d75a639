"""The AttentionXML-like network to the runtime `AttentionShortlister` (encoder + one graph per level).

The parity check scores real training documents through the runtime part and through torch, over the
same candidates, and refuses the export above the tolerance.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn

from model_export.onnx_graph import check_parity, export_record, to_onnx
from xmlc.attention import AttentionConfig, AttentionShortlister
from xmlc.onnx_session import OnnxSession
from xmlc.topk import label_clusters


class AttentionNetLike(Protocol):
    """What the export needs of the training network (`training.attention_xml.AttentionNet`)."""

    def encode(self, word_ids: torch.Tensor) -> torch.Tensor: ...

    def attend(
        self, level: int, hidden: torch.Tensor, word_ids: torch.Tensor, cand: torch.Tensor
    ) -> torch.Tensor: ...


class ExportedEncoder(nn.Module):
    def __init__(self, net: AttentionNetLike) -> None:
        super().__init__()
        self.net = net

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        return self.net.encode(word_ids)


class ExportedLevel(nn.Module):
    def __init__(self, net: AttentionNetLike, level: int) -> None:
        super().__init__()
        self.net = net
        self.level = level

    def forward(self, hidden: torch.Tensor, word_ids: torch.Tensor, cand_ids: torch.Tensor) -> torch.Tensor:
        return self.net.attend(self.level, hidden, word_ids, cand_ids)


@torch.no_grad()
def export_attention(
    net: AttentionNetLike,
    word_map: np.ndarray,
    members: np.ndarray,
    config: AttentionConfig,
    sample: np.ndarray,
) -> AttentionShortlister:
    """The runtime model of ``net``, checked on ``sample`` (padded word ids of training documents)."""
    ids = torch.ones((2, 7), dtype=torch.int64)
    hidden = ExportedEncoder(net).eval()(ids)  # the wrappers export in eval mode: no dropout
    cand = torch.zeros((2, 3), dtype=torch.int64)
    seq = {0: "batch", 1: "words"}
    encoder = to_onnx(ExportedEncoder(net), (ids,), {"word_ids": seq}, {"hidden": seq})
    levels = [
        to_onnx(
            ExportedLevel(net, level),
            (hidden, ids, cand),
            {"hidden": seq, "word_ids": seq, "cand_ids": {0: "batch", 1: "candidates"}},
            {"logits": {}},
        )
        for level in (0, 1)
    ]
    model = AttentionShortlister(
        OnnxSession(encoder), OnnxSession(levels[0]), OnnxSession(levels[1]), word_map, members, config
    )
    model.export_info = export_record(parity_check(net, model, sample))
    return model


@torch.no_grad()
def parity_check(net: AttentionNetLike, model: AttentionShortlister, word_ids: np.ndarray) -> float:
    """Max |torch - onnxruntime| over the final candidate scores of ``word_ids``."""
    cand, onnx_scores = model.score(word_ids)
    ids = torch.from_numpy(word_ids)
    hidden = net.encode(ids)
    every = torch.arange(model.config.n_clusters).expand(len(word_ids), -1)
    c_prob = torch.sigmoid(net.attend(0, hidden, ids, every)).numpy()
    l_prob = torch.sigmoid(net.attend(1, hidden, ids, torch.from_numpy(np.maximum(cand, 0)))).numpy()
    cluster_of = label_clusters(model.members, model.n_labels)
    torch_scores = np.where(
        cand >= 0, np.take_along_axis(c_prob, cluster_of[np.maximum(cand, 0)], axis=1) * l_prob, -1.0
    )
    return check_parity(
        "attention model", float(np.abs(torch_scores - onnx_scores).max()) if cand.size else 0.0
    )
