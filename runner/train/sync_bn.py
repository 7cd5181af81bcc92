"""Batch norm over the global batch of all DDP ranks, on any device (gloo on CPU included).

torch's nn.SyncBatchNorm runs on GPUs only (its kernels are CUDA ones), so `trainer.sync_bn` on CPU uses
this module instead. It computes the statistics in two passes with the differentiable all-reduce of
torch.distributed: the mean over the global batch, then the variance around it. Gradients flow
through both all-reduces, so a W-rank step equals the 1-process step on the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
from torch import nn


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, differentiable: its backward sums the ranks' gradients."""
    if hasattr(funcol, "all_reduce_backward"):  # recent torch: funcol's all_reduce has autograd
        return funcol.wait_tensor(funcol.all_reduce(t, "sum", dist.group.WORLD))
    import torch.distributed.nn.functional as dist_nn  # older torch (deprecated in newer ones)

    return dist_nn.all_reduce(t)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = all_reduce_sum(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce_sum((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)  # unbiased, as BatchNorm2d
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """nn.SyncBatchNorm on CUDA; GlobalBatchNorm2d for every BatchNorm2d elsewhere (same state_dict keys)."""
    device = next(module.parameters()).device
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.BatchNorm2d:
                new = GlobalBatchNorm2d(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                ).to(device)
                new.load_state_dict(child.state_dict())
                new.__dict__.update({k: v for k, v in child.__dict__.items() if k.startswith("runner_")})
                setattr(parent, name, new)
    return module
