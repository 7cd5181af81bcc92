"""Input-pipeline throughput (images/s, no model): resident tensors vs an ImageFolder of ImageNet-sized JPEGs.

    python -m benchmarks.bench_data                       # generates 512 JPEGs (500×375) in a temp dir
    python -m benchmarks.bench_data --root /data/imagenet --workers 15 --batches 50

Paths measured:
  resident   uint8 tensors on the device, batched crop/flip/normalise (runner/data/tensor_loader.py): the ceiling
  folder     runner's ImageNet loader: DataLoader workers decode with PIL + scale jitter, pinned, non_blocking copy
  gpu-decode (CUDA + torchvision only) workers read the file bytes; torchvision.io.decode_jpeg decodes the batch
             on the GPU, which then resizes, crops and flips each image
Compare a path's rate with the model's compute-bound rate on resident tensors (e.g. ResNet-50 bf16 on an H100,
3,980 img/s): the input pipeline keeps up when it is above it.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from runner.data import Context, build_data, dataset_config
from runner.data.tensor_loader import TensorLoader


def make_folder(root: Path, images: int, classes: int = 8, size=(500, 375)) -> None:
    """ImageNet-like JPEGs (the ILSVRC average is about 400×350, quality ~90) of smooth noise."""
    rng = np.random.default_rng(0)
    for i in range(images):
        for split in ("train", "val") if i < classes * 2 else ("train",):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
            Image.fromarray(small).resize(size, Image.BICUBIC).save(folder / f"{i}.JPEG", quality=90)


def rate(batches, count: int, warmup: int = 3) -> float:
    """Images/s over `count` batches after `warmup` (the device is synchronised at both ends)."""
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    sync()
    t0, n = time.perf_counter(), 0
    for _ in range(count):
        x, _ = next(it)
        n += len(x)
    sync()
    return n / (time.perf_counter() - t0)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def forever(loader):
    epoch = 0
    while True:
        yield from loader.batches(epoch)
        epoch += 1


def gpu_decode_batches(root: Path, batch_size: int, workers: int, seed: int = 0):
    """Workers read bytes; the GPU decodes (nvJPEG via torchvision) and augments (scale jitter, crop, flip)."""
    import torchvision.io  # optional: GPU machines only (pyproject extra `gpu`)

    from runner.data.imagenet import scan

    _, samples = scan(root / "train")

    class Bytes(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(samples)

        def __getitem__(self, i: int):
            return torchvision.io.read_file(samples[i][0]), samples[i][1]

    loader = torch.utils.data.DataLoader(
        Bytes(), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        collate_fn=lambda items: ([b for b, _ in items], torch.tensor([y for _, y in items])),
        pin_memory=True, persistent_workers=workers > 0,
    )  # fmt: skip
    mean = torch.tensor([123.675, 116.28, 103.53], device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375], device="cuda").view(1, 3, 1, 1)
    rng = random.Random(seed)
    while True:
        for data, y in loader:
            images = torchvision.io.decode_jpeg(data, device="cuda", mode=torchvision.io.ImageReadMode.RGB)
            out = []
            for img in images:
                _, h, w = img.shape
                s = rng.randint(256, 512) / min(h, w)
                img = F.interpolate(img[None].float(), size=(round(h * s), round(w * s)), mode="bilinear",
                                    antialias=True)  # fmt: skip
                top, left = rng.randint(0, img.shape[2] - 224), rng.randint(0, img.shape[3] - 224)
                img = img[:, :, top : top + 224, left : left + 224]
                out.append(img.flip(3) if rng.random() < 0.5 else img)
            yield (torch.cat(out) - mean) / std, y.cuda(non_blocking=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, help="an ImageFolder with train/ and val/ (default: generate one)"
    )
    parser.add_argument("--images", type=int, default=512, help="JPEGs to generate when --root is not given")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10, help="batches timed per path (after 3 warm-up)")
    parser.add_argument(
        "--workers", type=int, default=None, help="decode processes (default: all cores but one)"
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "imagenet"
        if args.root is None:
            print(f"generating {args.images} JPEGs (500×375) in {root} ...")
            make_folder(root, args.images)
        n = args.batch_size * 8
        resident = TensorLoader(
            torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8, device=device),
            torch.zeros(n, dtype=torch.long, device=device), batch_size=args.batch_size,
            mean=torch.zeros(1, 3, 1, 1), std=torch.ones(1, 3, 1, 1), train=True, augment=["crop", "flip"],
        )  # fmt: skip
        results = {"resident": rate(forever(resident), args.batches)}
        classes = sum(1 for p in (root / "train").iterdir() if p.is_dir())
        cfg = dataset_config(
            "imagenet", root=str(root), val_split=0, workers=args.workers, num_classes=classes
        )
        ctx = Context(device, 0, 1, args.batch_size, 0, device.type == "cuda", Path.cwd())
        results["folder"] = rate(forever(build_data(cfg, ctx).train), args.batches)
        if device.type == "cuda":
            try:
                workers = args.workers if args.workers is not None else 8
                results["gpu-decode"] = rate(gpu_decode_batches(root, args.batch_size, workers), args.batches)
            except ImportError:
                print("gpu-decode skipped: torchvision is not installed (pip install '.[gpu]')")
        print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}")
        for name, value in results.items():
            print(f"{name:>11}: {value:10,.0f} img/s")


if __name__ == "__main__":
    main()
