"""Export the AttentionXML-like model to ONNX (encoder + one scorer per level) and check parity.

The parity check scores real training documents through the serving class (`AttentionShortlister`) and
through torch, over the same candidates, and refuses the export above the tolerance.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_export.onnx_export import OPSET, PARITY_TOLERANCE, ParityError
from training.attention_xml import AttentionNet, ExportedEncoder, ExportedLevel
from xmlc.attention import (
    CLUSTER_FILE,
    ENCODER_FILE,
    LABEL_FILE,
    AttentionConfig,
    AttentionShortlister,
    write_arrays,
)
from xmlc.tree import label_clusters


def export_attention(net: AttentionNet, folder: Path) -> None:
    net = net.eval()
    ids = torch.ones((2, 7), dtype=torch.int64)
    with torch.no_grad():
        hidden = net.encode(ids)
    cand = torch.zeros((2, 3), dtype=torch.int64)
    seq = {0: "batch", 1: "words"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ExportedEncoder(net).eval(),  # a wrapper is in training mode: dropout would be exported
            (ids,),
            str(folder / ENCODER_FILE),
            input_names=["word_ids"],
            output_names=["hidden"],
            dynamic_axes={"word_ids": seq, "hidden": seq},
            opset_version=OPSET,
            dynamo=False,
        )
        for level, name in ((0, CLUSTER_FILE), (1, LABEL_FILE)):
            torch.onnx.export(
                ExportedLevel(net, level).eval(),
                (hidden, ids, cand),
                str(folder / name),
                input_names=["hidden", "word_ids", "cand_ids"],
                output_names=["logits"],
                dynamic_axes={"hidden": seq, "word_ids": seq, "cand_ids": {0: "batch", 1: "candidates"}},
                opset_version=OPSET,
                dynamo=False,
            )


@torch.no_grad()
def parity_check(
    net: AttentionNet, model: AttentionShortlister, word_ids: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> float:
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
    diff = float(np.abs(torch_scores - onnx_scores).max()) if cand.size else 0.0
    if not diff <= tolerance:
        raise ParityError(f"ONNX attention model differs from torch by {diff:.3g} (tolerance {tolerance:g})")
    return diff


class AttentionWriter:
    """Stands in for the shortlister when the bundle is written: exports, reloads, checks parity.

    ``meta`` is the manifest's shortlister entry; the parity figure is added to it when the files are
    written (the manifest is written after the files).
    """

    kind = AttentionShortlister.kind

    def __init__(
        self,
        net: AttentionNet,
        word_map: np.ndarray,
        members: np.ndarray,
        config: AttentionConfig,
        sample: np.ndarray,
    ) -> None:
        self.net, self.word_map, self.members, self.config = net, word_map, members, config
        self.sample = sample  # padded word ids of training documents, for the parity check
        self.n_labels = config.n_labels
        self.meta: dict[str, Any] = {"kind": self.kind, **asdict(config)}

    def save(self, folder: Path) -> list[str]:
        export_attention(self.net, folder)
        files = write_arrays(folder, self.word_map, self.members, self.config)
        diff = parity_check(self.net, AttentionShortlister.load(folder), self.sample)
        self.meta.update(parity_max_abs_diff=diff, opset=OPSET)
        return files
