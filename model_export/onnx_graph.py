"""Torch modules to ONNX graphs, and the parity check every export must pass.

One place for the exporter's settings (opset 17, the TorchScript exporter, its warnings silenced), so
every graph of a bundle is made the same way. Graphs come back as bytes: the runtime part is built in
memory (`xmlc.onnx_session.OnnxSession` takes bytes), checked against torch, and saved with the bundle
like any other part.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn

OPSET = 17
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported graph does not compute what the torch model computes."""


def to_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
) -> bytes:
    """``module`` (in eval mode) traced on ``args`` as an ONNX graph; ``inputs`` and ``outputs`` name the
    graph's tensors in order, each with its dynamic axes (axis -> name)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            args,
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any binary file object
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={name: axes for name, axes in {**inputs, **outputs}.items() if axes},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def check_parity(what: str, diff: float, tolerance: float = PARITY_TOLERANCE) -> float:
    """``diff`` when within ``tolerance``; else `ParityError` saying which graph and by how much."""
    if not diff <= tolerance:
        raise ParityError(f"ONNX {what} differs from torch by {diff:.3g} (tolerance {tolerance:g})")
    return diff


def export_record(diff: float) -> dict[str, Any]:
    """What the manifest says of an export: the opset and the difference measured against torch."""
    return {"opset": OPSET, "parity_max_abs_diff": diff}
