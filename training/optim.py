"""One optimisation step with gradient clipping, shared by the deep models' training loops."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def clipped_step(
    loss: torch.Tensor,
    params: Iterable[nn.Parameter],
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    clip: float,
) -> float:
    """Backward, clip the gradient norm at ``clip``, step the optimizer and the schedule; the loss."""
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(list(params), clip)
    opt.step()
    if sched is not None:
        sched.step()
    return float(loss.detach())
