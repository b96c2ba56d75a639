"""Export the fine-tuned transformer matcher to ONNX, with its tokenizer, and check parity."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from model_export.onnx_export import OPSET, PARITY_TOLERANCE, ParityError
from training.xtransformer import MatcherNet
from xmlc.matcher import MATCHER_FILE, TOKENIZER_FILE, MatcherConfig, TransformerMatcher, write_arrays


def export_matcher(net: MatcherNet, folder: Path, max_len: int) -> None:
    net = net.cpu().eval()
    ids = torch.ones((2, max_len), dtype=torch.int64)
    mask = torch.ones((2, max_len), dtype=torch.int64)
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (ids, mask),
            str(folder / MATCHER_FILE),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": batch, "attention_mask": batch, "logits": batch},
            opset_version=OPSET,
            dynamo=False,
        )


@torch.no_grad()
def parity_check(
    net: MatcherNet, matcher: TransformerMatcher, texts: list[str], tolerance: float = PARITY_TOLERANCE
) -> float:
    """Max |torch - onnxruntime| over the cluster probabilities of ``texts``."""
    from xmlc.matcher import encode_texts

    ids, mask = encode_texts(matcher.tokenizer, texts)
    p_onnx = expit(matcher.logits(ids, mask))
    p_torch = torch.sigmoid(net.eval()(torch.from_numpy(ids), torch.from_numpy(mask))).numpy()
    diff = float(np.abs(p_onnx - p_torch).max()) if len(texts) else 0.0
    if not diff <= tolerance:
        raise ParityError(f"ONNX matcher differs from torch by {diff:.3g} (tolerance {tolerance:g})")
    return diff


class MatcherWriter:
    """Stands in for the shortlister when the bundle is written: exports, reloads, checks parity."""

    kind = TransformerMatcher.kind

    def __init__(
        self, net: MatcherNet, tokenizer: Path, members: np.ndarray, config: MatcherConfig, sample: list[str]
    ) -> None:
        self.net, self.tokenizer, self.members, self.config = net, tokenizer, members, config
        self.sample = sample  # training texts for the parity check
        self.n_labels = config.n_labels
        self.meta: dict[str, Any] = {"kind": self.kind, **asdict(config)}

    def save(self, folder: Path) -> list[str]:
        export_matcher(self.net, folder, self.config.max_len)
        shutil.copyfile(self.tokenizer, folder / TOKENIZER_FILE)
        files = write_arrays(folder, self.members, self.config)
        diff = parity_check(self.net, TransformerMatcher.load(folder), self.sample)
        self.meta.update(parity_max_abs_diff=diff, opset=OPSET)
        return files
