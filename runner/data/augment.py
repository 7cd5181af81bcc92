"""ImageNet-style augmentation, as the papers describe it (PIL per image in DataLoader workers, lighting batched).

Training views (one per image per epoch; `rng` is seeded by (seed, epoch, index), so a view is reproducible):
    alexnet              shorter side → 256, centre 256×256, random 224 crop, flip      (Krizhevsky 2012, Sec. 4.1)
    scale_jitter         shorter side S ~ U[lo, hi] ([256, 512] VGG, [256, 480] ResNet), random 224 crop, flip
    random_resized_crop  area 8–100 %, aspect 3/4–4/3, resized to 224, flip          (the modern default)
Colour: `lighting` adds AlexNet's PCA noise Σ α_i λ_i v_i, α_i ~ N(0, σ=0.1), on the whole batch on the device.
Test views (shorter side → Q = test_resize first):
    center    the centre 224 crop: one view
    ten_crop  the 4 corner 224 patches and the centre patch of the Q×Q centre square, and their flips: 10 views
              (AlexNet Sec. 4.1; ResNet Sec. 3.4 cites AlexNet for its "standard 10-crop testing")
    dense     the whole rescaled image and its flip: 2 views of a size that varies per image, so a dense
              batch holds one image (VGG Sec. 3.2; the model applies its FC layers as convolutions)
`average_views` averages the views' softmax outputs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

# One training/test view of a PIL image: uint8 (3, H, W), or (views, 3, H, W) for ten_crop and dense.
Transform = Callable[[Image.Image, random.Random], torch.Tensor]

# ImageNet RGB statistics on the 0..255 scale, of the training set (torchvision's (0.485, 0.456, 0.406) and
# (0.229, 0.224, 0.225) × 255): fixed constants, not recomputed per run. Eigen-decomposition of the pixel covariance as published with
# fb.resnet.torch (eigenvalues there are on the 0..1 scale: 0.2175, 0.0188, 0.0045; here ×255).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# On the CPU whatever device context imports this module first (the pre-flight's meta device would make them
# meta tensors, which hold no values).
EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045], device="cpu") * 255
EIGVEC = torch.tensor(
    [  # columns are the eigenvectors v_1, v_2, v_3 in RGB
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ],
    device="cpu",
)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → uint8 (3, H, W)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if min(w, h) == size:
        return img
    scale = size / min(w, h)
    return img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def random_crop(img: Image.Image, size: int, rng: random.Random) -> Image.Image:
    w, h = img.size
    left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    return img.crop((left, top, left + size, top + size))


def random_flip(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


def random_resized_crop(
    img: Image.Image, size: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Image.Image:
    """Inception-style crop (Szegedy 2015), as torchvision's RandomResizedCrop: 10 tries, then the centre."""
    w, h = img.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return img.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BILINEAR)
    side = min(w, h)  # fallback: the largest centred square
    return center_crop(img, side).resize((size, size), Image.BILINEAR)


def ten_crop_boxes(w: int, h: int, size: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of the 4 corner patches (top-left, top-right, bottom-left, bottom-right) and
    the centre patch of the w×h image's centre square, whose side is the shorter side (AlexNet Sec. 4.1:
    "five 224 × 224 patches (the four corner patches and the center patch)" of the 256×256 image)."""
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    far, mid = side - size, (side - size) // 2
    corners = [(0, 0), (far, 0), (0, far), (far, far), (mid, mid)]
    return [(x0 + x, y0 + y, x0 + x + size, y0 + y + size) for x, y in corners]


def ten_crop(img: Image.Image, size: int) -> torch.Tensor:
    """The 5 patches of `ten_crop_boxes`, then the same 5 flipped: uint8 (10, 3, size, size)."""
    crops = [to_tensor(img.crop(box)) for box in ten_crop_boxes(*img.size, size)]
    return torch.stack(crops + [c.flip(2) for c in crops])


def dense_view(img: Image.Image, shorter: int) -> torch.Tensor:
    """The whole image, shorter side → Q, and its horizontal flip: uint8 (2, 3, H, W) (VGG Sec. 3.2)."""
    whole = to_tensor(resize_shorter(img, shorter))
    return torch.stack([whole, whole.flip(2)])


def average_views(logits: torch.Tensor, views: int) -> torch.Tensor:
    """(N·views, K) logits of consecutive views → (N, K) log of the view-averaged softmax.

    The result works as logits: softmax/cross-entropy/argmax of it are those of the averaged probabilities."""
    probs = logits.float().softmax(1).view(-1, views, logits.shape[1]).mean(1)
    return probs.clamp_min(1e-12).log()


def lighting(std: float) -> Callable[[torch.Tensor, torch.Generator, int, int], torch.Tensor]:
    """AlexNet's PCA colour noise on float (N, 3, H, W) pixels (0..255): each image gets Σ α_i λ_i v_i added,
    α ~ N(0, std) drawn for the whole global batch of `total` images (this rank holds [lo, lo + N))."""

    def add(x: torch.Tensor, gen: torch.Generator, lo: int, total: int) -> torch.Tensor:
        alpha = torch.randn(total, 3, generator=gen, device=x.device)[lo : lo + len(x)] * std
        shift = (alpha * EIGVAL.to(x.device)) @ EIGVEC.to(x.device).T  # (N, 3): V (α ⊙ λ) per image
        return x + shift.view(len(x), 3, *([1] * (x.dim() - 2)))

    return add


# --- named pipelines (conf/dataset/imagenet.yaml: augment, test_view) ------------------------------------


def _alexnet(cfg: Mapping[str, Any]) -> Transform:
    crop = cfg["crop"]

    def view(img: Image.Image, rng: random.Random) -> torch.Tensor:
        img = center_crop(resize_shorter(img, cfg["test_resize"]), cfg["test_resize"])
        return to_tensor(random_flip(random_crop(img, crop, rng), rng))

    return view


def _scale_jitter(cfg: Mapping[str, Any]) -> Transform:
    lo, hi = cfg["scale"]

    def view(img: Image.Image, rng: random.Random) -> torch.Tensor:
        img = resize_shorter(img, rng.randint(lo, hi))
        return to_tensor(random_flip(random_crop(img, cfg["crop"], rng), rng))

    return view


def _random_resized_crop(cfg: Mapping[str, Any]) -> Transform:
    def view(img: Image.Image, rng: random.Random) -> torch.Tensor:
        return to_tensor(random_flip(random_resized_crop(img, cfg["crop"], rng), rng))

    return view


def _center(cfg: Mapping[str, Any]) -> Transform:
    return lambda img, rng: to_tensor(center_crop(resize_shorter(img, cfg["test_resize"]), cfg["crop"]))


def _ten_crop(cfg: Mapping[str, Any]) -> Transform:
    return lambda img, rng: ten_crop(resize_shorter(img, cfg["test_resize"]), cfg["crop"])


def _dense(cfg: Mapping[str, Any]) -> Transform:
    return lambda img, rng: dense_view(img, cfg["test_resize"])


TRAIN_VIEWS: dict[str, Callable[[Mapping[str, Any]], Transform]] = {
    "alexnet": _alexnet,
    "scale_jitter": _scale_jitter,
    "random_resized_crop": _random_resized_crop,
}
TEST_VIEWS: dict[str, Callable[[Mapping[str, Any]], Transform]] = {
    "center": _center,
    "ten_crop": _ten_crop,
    "dense": _dense,
}
