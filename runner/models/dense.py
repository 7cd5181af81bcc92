"""Dense evaluation (Simonyan & Zisserman 2014, Sec. 3.2): the fully-connected layers applied as
convolutions over the whole test image, class scores averaged over space.

"The fully-connected layers are first converted to convolutional layers (the first FC layer to a 7 × 7
conv. layer, the last two FC layers to 1 × 1 conv. layers) ... the class score map is spatially averaged
(sum-pooled)." The flip half of Sec. 3.2 (soft-max averaged over the image and its flip) is `predict`'s,
which takes every multi-view batch the test loaders give (AlexNet's 10 crops, the dense image and its flip).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from runner.data.augment import average_views
from runner.models.head import ConvNet
from runner.models.resnet import ResNet


def class_score_map(model: ConvNet, x: torch.Tensor) -> torch.Tensor:
    """The (N, classes, H', W') map of class scores the fully-convolutional net gives for images x."""
    maps = model.features(x)
    side = model.fc_map
    if maps.shape[-2] < side or maps.shape[-1] < side:
        # A map smaller than the first fc layer's window (small inputs): the model's own adaptive pool
        # brings it to side×side, exactly as the ordinary forward pass does.
        maps = model.pool(maps)
    first_fc = next(m for m in model.classifier if isinstance(m, nn.Linear))
    for layer in model.classifier:
        if isinstance(layer, nn.Linear):
            # The weight viewed as a conv kernel (a view, no copy): side×side for the first fc layer,
            # 1×1 after it. torch.flatten orders fc inputs by channel, row, column, as a conv kernel does.
            k = side if layer is first_fc else 1
            maps = F.conv2d(maps, layer.weight.view(layer.out_features, -1, k, k), layer.bias)
        else:  # activations and dropout act on each position alike
            maps = layer(maps)
    return maps


def dense_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class scores (N, classes) for a batch of whole images x (N, C, H, W) of any size the trunk takes.

    AlexNet, VGG, plain_deep: the fc layers as convolutions, the score map averaged over space. On the
    input size the fc layers were built for (224 for AlexNet/VGG) this equals model(x). ResNets are fully
    convolutional up to their global average pool, and a linear fc commutes with the average: model(x)
    is already their dense score. The PReLU nets' SPP head has no dense form here (their paper's dense
    test pools windows of the map, Sec. 3): they raise ValueError.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    if isinstance(model, ResNet):
        return model(x)
    if not isinstance(model, ConvNet) or model.fc_map is None:
        raise ValueError(
            "dense evaluation needs an fc head over a fixed-size map (AlexNet, VGG, plain_deep) or a global "
            f"average pool (ResNets); this {type(model).__name__} has neither (the PReLU nets' SPP head)"
        )
    return class_score_map(model, x).mean(dim=(2, 3))


def predict(model: nn.Module, x: torch.Tensor, dense: bool = False) -> torch.Tensor:
    """Class scores of a batch. Multi-view batches (N, views, C, H, W) — 10-crop, or an image and its flip —
    give the log of the views' averaged softmax, which argmax and cross-entropy read like logits."""
    multi_view = x.dim() == 5
    flat = x.flatten(0, 1) if multi_view else x
    out = dense_scores(model, flat) if dense else model(flat)
    return average_views(out, x.shape[1]) if multi_view else out
