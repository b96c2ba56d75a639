"""The fine-tuned transformer matcher to the runtime `TransformerMatcher`, with its tokenizer, checked."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from model_export.onnx_graph import check_parity, export_record, to_onnx
from xmlc.matcher import MatcherConfig, TransformerMatcher, encode_texts
from xmlc.onnx_session import OnnxSession


@torch.no_grad()
def export_matcher(
    net: nn.Module, tokenizer_json: str, members: np.ndarray, config: MatcherConfig, sample: list[str]
) -> TransformerMatcher:
    """The runtime matcher of ``net`` (input ids, attention mask -> cluster logits), checked on the
    training texts ``sample``."""
    net = net.cpu().eval()
    ids = torch.ones((2, config.max_len), dtype=torch.int64)
    batch = {0: "batch"}
    graph = to_onnx(net, (ids, ids), {"input_ids": batch, "attention_mask": batch}, {"logits": batch})
    matcher = TransformerMatcher(OnnxSession(graph), tokenizer_json, members, config)
    matcher.export_info = export_record(parity_check(net, matcher, sample))
    return matcher


@torch.no_grad()
def parity_check(net: nn.Module, matcher: TransformerMatcher, texts: list[str]) -> float:
    """Max |torch - onnxruntime| over the cluster probabilities of ``texts``."""
    ids, mask = encode_texts(matcher.tokenizer, texts)
    p_onnx = expit(matcher.logits(ids, mask))
    p_torch = torch.sigmoid(net.eval()(torch.from_numpy(ids), torch.from_numpy(mask))).numpy()
    return check_parity("matcher", float(np.abs(p_onnx - p_torch).max()) if len(texts) else 0.0)
