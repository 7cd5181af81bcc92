"""Data sets in their real on-disk formats (generated here, tiny), the papers' augmentation, and the entry point."""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import random
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, images_wrong, mlflow_runs, run_runner
from fakes import IMAGENET, SMALL, ctx, write_cifar, write_fashion, write_folder  # noqa: E402
from PIL import Image

from runner.data import (
    Context,
    Shape,
    build_data,
    check_data,
    cifar,
    common,
    dataset_config,
    dataset_names,
    dataset_shape,
    fashion_mnist,
    imagenet,
)
from runner.data import augment as A
from runner.data.tensor_loader import TensorLoader, random_flip, resident_data
from runner.errors import ConfigError, DataError

CIFAR10 = dataset_config(
    "cifar10", val_split=0
)  # the YAML itself: a key the builder reads and it lacks fails
FASHION = dataset_config("fashion_mnist", root="data")


def test_cifar10_batches_read_with_counts_shapes_and_labels(tmp_path):
    written = write_cifar(tmp_path / "data")
    train_x, train_y, test_x, test_y, classes = cifar.load(CIFAR10, tmp_path)
    assert classes == 10 and train_x.shape == (100, 3, 32, 32) and test_x.shape == (30, 3, 32, 32)
    assert train_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    data, labels = written["data_batch_2"]  # images 20..39, rows of 1024 R then G then B
    assert torch.equal(train_x[20:40], torch.from_numpy(data.reshape(-1, 3, 32, 32)))
    assert train_y[20:40].tolist() == labels.tolist()
    assert test_y.tolist() == written["test_batch"][1].tolist()


def test_cifar100_reads_fine_labels(tmp_path):
    write_cifar(tmp_path / "data", per_batch=8, test=10, kind="cifar100")
    train_x, train_y, test_x, _, classes = cifar.load({**CIFAR10, "name": "cifar100"}, tmp_path)
    assert classes == 100 and len(train_x) == 40 and len(test_x) == 10 and int(train_y.max()) < 100


def test_truncated_cifar_pickle_names_the_file(tmp_path):
    write_cifar(tmp_path / "data")
    bad = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataError) as e:
        check_data(CIFAR10, tmp_path)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_missing_cifar_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as e:
        check_data(CIFAR10, tmp_path)
    message = str(e.value)
    assert str(tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1") in message
    assert "dataset.download=true" in message and "\n" not in message


def test_cifar_download_offline_is_one_line(tmp_path, monkeypatch):
    def offline(url, target):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(common.urllib.request, "urlretrieve", offline)
    with pytest.raises(DataError) as e:
        check_data({**CIFAR10, "download": True}, tmp_path)
    assert "cifar-10-python.tar.gz" in str(e.value) and "\n" not in str(e.value)
    assert not list((tmp_path / "data").glob("*.part"))


def test_cifar_download_checks_md5_and_unpacks(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_cifar(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    tarball = buffer.getvalue()
    monkeypatch.setattr(
        common.urllib.request, "urlretrieve", lambda url, target: Path(target).write_bytes(tarball)
    )

    with pytest.raises(DataError, match="md5 mismatch"):  # the official checksum does not match our tarball
        check_data({**CIFAR10, "download": True}, tmp_path)
    layout = replace(cifar.LAYOUTS["cifar10"], md5=hashlib.md5(tarball).hexdigest())
    monkeypatch.setitem(cifar.LAYOUTS, "cifar10", layout)
    check_data({**CIFAR10, "download": True}, tmp_path)
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()


# --- Fashion-MNIST IDX -----------------------------------------------------------------------------------


def test_idx_pair_reads_padded_to_32(tmp_path):
    write_fashion(tmp_path / "data")
    train_x, train_y, test_x, test_y = fashion_mnist.load(FASHION, tmp_path)
    assert (
        train_x.shape == (12, 1, 32, 32) and test_x.shape == (6, 1, 32, 32) and train_x.dtype == torch.uint8
    )
    assert train_y.tolist() == [i % 10 for i in range(12)]
    assert int(train_x[:, :, :2].max()) == 0 and int(train_x[:, :, 2:30, 2:30].min()) >= 1  # zero border of 2


@pytest.mark.parametrize(
    "damage, message",
    [(lambda raw: b"\x00\x00\x0c\x03" + raw[4:], "wrong magic"), (lambda raw: raw[:-100], "truncated")],
)
def test_bad_idx_file_is_named(tmp_path, damage, message):
    raw_dir = write_fashion(tmp_path / "data")
    bad = raw_dir / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(damage(gzip.decompress(bad.read_bytes()))))
    with pytest.raises(DataError, match=message) as e:
        check_data(FASHION, tmp_path)
    assert str(bad) in str(e.value)


def test_fashion_download_fetches_each_missing_gz_from_the_authors_with_its_md5(tmp_path, monkeypatch):
    """Each of the four files: the authors' URL, `<raw>/<name>.gz`, its checksum, and the one-line way to get it
    by hand if the fetch fails; a file already there is not fetched again."""
    fetched = []
    monkeypatch.setattr(fashion_mnist, "fetch", lambda *args: fetched.append(args))
    raw_dir = tmp_path / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True)
    (raw_dir / "train-labels-idx1-ubyte.gz").write_bytes(b"already here")
    fashion_mnist.download(raw_dir)
    how = "apt-get install dataset-fashion-mnist (or dataset.download=true on a machine that is online)"
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert fetched == [
        (f"{url}{name}.gz", raw_dir / f"{name}.gz", md5, how)
        for name, md5 in [
            ("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310"),
        ]
    ]
    assert (raw_dir / "train-labels-idx1-ubyte.gz").read_bytes() == b"already here"


def test_fashion_download_with_every_file_there_fetches_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "fetch", lambda *args: pytest.fail(f"fetched {args[0]}"))
    for name in fashion_mnist.FILES:
        (tmp_path / f"{name}.gz").write_bytes(b"")
    fashion_mnist.download(tmp_path)


def test_fashion_download_refuses_a_corrupt_file_and_says_offline_in_one_line(tmp_path, monkeypatch):
    """Through the real fetch: a body whose md5 is not the authors' is refused and removed; no network is a
    one-line error naming the URL and how to get the files."""
    raw_dir = tmp_path / "raw"
    asked = []

    def corrupt(url, target):
        asked.append(url)
        Path(target).write_bytes(b"not the file")

    monkeypatch.setattr(common.urllib.request, "urlretrieve", corrupt)
    with pytest.raises(DataError) as e:
        fashion_mnist.download(raw_dir)
    target = raw_dir / "train-images-idx3-ubyte.gz"
    assert asked == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"]
    assert str(e.value) == (
        f"{target}: download corrupt (md5 mismatch with 8d4fb7e6c68d591d4c3dfef9ec88bf0d); run again"
    )
    assert list(raw_dir.iterdir()) == []

    def offline(url, target):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(common.urllib.request, "urlretrieve", offline)
    with pytest.raises(DataError) as e:
        fashion_mnist.download(raw_dir)
    assert str(e.value) == (
        "cannot download http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz "
        "(Network is unreachable); apt-get install dataset-fashion-mnist "
        "(or dataset.download=true on a machine that is online)"
    )


# --- the resident loader: split, crop, flip ---------------------------------------------------------------


def test_val_split_is_disjoint_and_deterministic_for_a_seed(tmp_path):
    n = 200
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()
    ids = torch.arange(n)  # the label is the image's identity here

    def split(seed: int) -> tuple[set, set]:
        cfg = dataset_config("synthetic", val_split=50, split_seed=seed, augment=[])
        data = resident_data(x, ids, x[:10], ids[:10], num_classes=n, cfg=cfg, ctx=ctx(tmp_path, seed=7))
        return set(data.train.labels.tolist()), set(data.val.labels.tolist())

    train, val = split(0)
    assert len(val) == 50 and len(train) == 150 and not train & val and train | val == set(range(n))
    assert split(0) == (train, val)  # same split_seed → same split, whatever the training seed
    assert split(1)[1] != val


def test_flip_flips_about_half_the_batch():
    x = torch.arange(16, dtype=torch.uint8).view(1, 1, 1, 16).expand(4000, 1, 2, 16)
    out = random_flip(x, torch.Generator().manual_seed(0), 0, 4000)
    flipped = (out[:, 0, 0, 0] == 15).float()
    assert torch.equal(out[flipped.bool()], x[flipped.bool()].flip(3)) and torch.equal(
        out[~flipped.bool()], x[:1].expand_as(out)[~flipped.bool()]
    )
    assert abs(flipped.mean().item() - 0.5) < 0.03  # 4000 draws: σ = 0.008


def _decode(out: torch.Tensor) -> tuple[int, int, bool]:
    """(oy, ox, flip) of a pad-4 crop of the position-coded image (ch0 = row + 1, ch1 = col + 1)."""
    flip = bool(out[1, 16, 15] > out[1, 16, 16])
    oy = int(out[0, 16, 16]) - 13
    ox = int(out[1, 16, 16]) - (12 if flip else 13)
    return oy, ox, flip


def _reference(img: torch.Tensor, oy: int, ox: int, flip: bool) -> torch.Tensor:
    """The per-image CPU transform (torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip)."""
    out = F.pad(img, (4, 4, 4, 4))[:, oy : oy + 32, ox : ox + 32]
    return out.flip(2) if flip else out


def test_resident_crop_flip_matches_the_per_image_cpu_transform():
    n = 1024
    grid = torch.arange(1, 33, dtype=torch.uint8)
    img = torch.stack(
        [
            grid.view(32, 1).expand(32, 32),
            grid.view(1, 32).expand(32, 32),
            torch.zeros(32, 32, dtype=torch.uint8),
        ]
    )
    loader = TensorLoader(img.expand(n, 3, 32, 32), torch.zeros(n, dtype=torch.long), batch_size=256,
                          mean=torch.zeros(1, 3, 1, 1), std=torch.ones(1, 3, 1, 1), train=True,
                          augment=["crop", "flip"], seed=3)  # fmt: skip
    seen = []
    for epoch in range(4):
        for x, _ in loader.batches(epoch):
            for view in x.to(torch.uint8):
                oy, ox, flip = _decode(view)
                # every output is a valid pad-crop-flip of its input
                assert torch.equal(view, _reference(img, oy, ox, flip))
                seen.append((oy, ox, flip))
    rng = random.Random(0)  # the reference draws, per image, as a CPU transform pipeline does
    ref = [(rng.randint(0, 8), rng.randint(0, 8), rng.random() < 0.5) for _ in seen]

    def hist(samples, i, bins):
        return np.bincount([int(s[i]) for s in samples], minlength=bins) / len(samples)

    for i, bins in (
        (0, 9),
        (1, 9),
        (2, 2),
    ):  # offsets uniform on 0..8, flip ½: same marginals as the reference
        gpu, cpu = hist(seen, i, bins), hist(ref, i, bins)
        assert np.abs(gpu - cpu).max() < 0.03 and np.abs(gpu - 1 / bins).max() < 0.025, (i, gpu, cpu)
    joint = np.bincount([oy * 18 + ox * 2 + f for oy, ox, f in seen], minlength=162)
    chi2 = ((joint - len(seen) / 162) ** 2 / (len(seen) / 162)).sum()
    assert chi2 < 240  # 161 degrees of freedom: p ≈ 1e-4 at 240; oy, ox and flip are drawn independently


# --- ImageNet-style augmentation ---------------------------------------------------------------------------


def test_lighting_noise_has_the_stated_scale():
    x = torch.zeros(20000, 3, 2, 2)
    out = A.lighting(0.1)(x, torch.Generator().manual_seed(0), 0, 20000)
    assert torch.equal(out[:, :, :1, :1].expand_as(out), out)  # one colour shift per image
    alpha = (out[:, :, 0, 0] @ A.EIGVEC) / A.EIGVAL  # project onto the eigenvectors, divide by λ
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1), rtol=0.03)
    assert alpha.mean(0).abs().max() < 0.005
    assert (
        abs(out[:, 0, 0, 0].std().item() - 0.1 * 55.46 * 0.567) < 0.2
    )  # ≈ 3.1 levels of red, mostly from v_1


def test_ten_crop_views_and_softmax_average():
    pixels = np.random.default_rng(0).integers(0, 256, (36, 40, 3), dtype=np.uint8)  # 40 wide, 36 high
    views = A.ten_crop(Image.fromarray(pixels), 24)
    full = torch.from_numpy(pixels).permute(2, 0, 1)[:, :, 2:38]  # the 36×36 centre square
    assert views.shape == (10, 3, 24, 24) and views.dtype == torch.uint8
    assert torch.equal(views[0], full[:, :24, :24]) and torch.equal(views[3], full[:, 12:, 12:])
    assert torch.equal(views[4], full[:, 6:30, 6:30])  # centre
    assert torch.equal(views[5:], views[:5].flip(3))

    logits = torch.randn(4 * 10, 7)
    averaged = A.average_views(logits, 10)
    expected = logits.softmax(1).view(4, 10, 7).mean(1)
    assert averaged.shape == (4, 7) and torch.allclose(averaged.exp(), expected, atol=1e-6)
    same = torch.randn(1, 7).expand(10, 7)
    assert torch.allclose(A.average_views(same, 10).softmax(1), same[:1].softmax(1), atol=1e-6)


@pytest.mark.parametrize("name", sorted(A.TRAIN_VIEWS))
def test_train_views_shape_and_determinism(name):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 60, 3), dtype=np.uint8))
    view = A.TRAIN_VIEWS[name]({**SMALL, "augment": name})
    a, b = view(img, random.Random(5)), view(img, random.Random(5))
    assert a.shape == (3, 24, 24) and a.dtype == torch.uint8 and torch.equal(a, b)
    assert len({view(img, random.Random(s)).sum().item() for s in range(8)}) > 1  # views differ per draw


def test_scale_jitter_draws_the_shorter_side_in_range(monkeypatch):
    sides = []
    original = A.resize_shorter
    monkeypatch.setattr(A, "resize_shorter", lambda img, s: sides.append(s) or original(img, s))
    img = Image.new("RGB", (60, 45))
    view = A.TRAIN_VIEWS["scale_jitter"](SMALL)
    for s in range(400):
        view(img, random.Random(s))
    assert min(sides) == 28 and max(sides) == 40 and abs(np.mean(sides) - 34) < 0.6


def test_random_resized_crop_area_and_aspect():
    img = Image.new("RGB", (200, 160))
    rng, boxes = random.Random(0), []
    original = Image.Image.crop
    try:
        Image.Image.crop = lambda self, box: boxes.append(box) or original(self, box)
        for _ in range(300):
            A.random_resized_crop(img, 24, rng)
    finally:
        Image.Image.crop = original
    areas = np.array([(r - left) * (b - t) / (200 * 160) for left, t, r, b in boxes])
    aspects = np.array([(r - left) / (b - t) for left, t, r, b in boxes])
    assert areas.min() >= 0.07 and areas.max() <= 1.0 and 0.3 < np.median(areas) < 0.6
    assert aspects.min() >= 0.74 and aspects.max() <= 1.35


# --- ImageNet folder ------------------------------------------------------------------------------------------


def test_image_folder_loader(tmp_path):
    write_folder(tmp_path / "imnet")
    data = build_data(IMAGENET, ctx(tmp_path, batch_size=4))
    assert (data.num_classes, data.in_channels, data.image_size, data.train_size) == (3, 3, 24, 15)
    assert len(data.train) == 3 and len(data.val) == 1 and len(data.test) == 2
    batches = list(data.train.batches(0))
    assert len(batches) == 3 and all(
        x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 for x, _ in batches
    )
    assert all(y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2} for _, y in batches)
    # labels follow the class folders: colour 60·c + 10·i in the right two thirds, un-normalised
    for x, y in batches:
        red = x[:, 0] * A.IMAGENET_STD[0] + A.IMAGENET_MEAN[0]
        assert ((red.median(-1).values.median(-1).values - 60 * y) < 60).all()
    again = list(data.train.batches(0))
    assert all(
        torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True)
    )  # a pure function of (seed, epoch)
    assert not torch.equal(batches[0][0], next(data.train.batches(1))[0])
    assert torch.equal(next(data.train.batches(0, start=2))[0], batches[2][0])  # resume mid-epoch
    tests = list(data.test.batches(0))
    assert [x.shape for x, _ in tests] == [(4, 10, 3, 24, 24), (2, 10, 3, 24, 24)]
    assert sum(y.tolist().count(c) for _, y in tests for c in range(3)) == 6 and tests[0][1].tolist() == [
        0,
        0,
        1,
        1,
    ]


def test_image_folder_workers_decode_the_same_batches(tmp_path):
    write_folder(tmp_path / "imnet", train=3, val=1)
    one = build_data({**IMAGENET, "val_split": 0}, ctx(tmp_path, batch_size=3))
    two = build_data({**IMAGENET, "val_split": 0, "workers": 2}, ctx(tmp_path, batch_size=3))
    for (a, ya), (b, yb) in zip(one.train.batches(1), two.train.batches(1), strict=True):
        assert torch.equal(a, b) and torch.equal(ya, yb)


def test_rank_shards_union_is_the_single_process_batch():
    single = list(imagenet.ShardedBatches(50, 8, 0, 1, seed=1, train=True))
    ranks = [imagenet.ShardedBatches(50, 4, r, 2, seed=1, train=True) for r in range(2)]
    for r in ranks:
        r.set_epoch(0)
    for step, (a, b) in enumerate(zip(*ranks, strict=True)):
        assert a + b == single[step] and not set(a) & set(b)
    evals = [list(imagenet.ShardedBatches(11, 4, r, 2, seed=1, train=False)) for r in range(2)]
    assert sorted(j for shard in evals for batch in shard for _, j in batch) == list(range(11))


def test_empty_image_folder_is_named(tmp_path):
    (tmp_path / "imnet" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "imnet" / "val").mkdir()
    with pytest.raises(DataError) as e:
        check_data(IMAGENET, tmp_path)
    assert str(tmp_path / "imnet" / "train") in str(e.value) and "no images" in str(e.value)
    with pytest.raises(ConfigError, match="per_pixel"):
        check_data({**IMAGENET, "normalize": "per_pixel"}, tmp_path)


def test_synthetic_any_shape_and_class_count(tmp_path):
    cfg = dataset_config("synthetic", image_size=12, in_channels=1, num_classes=7, train_size=40, test_size=9,
                         val_split=8, augment=["flip"])  # fmt: skip
    data = build_data(cfg, ctx(tmp_path))
    assert (data.num_classes, data.in_channels, data.image_size, data.train_size) == (7, 1, 12, 32)
    x, y = next(data.train.batches(0))
    assert x.shape == (8, 1, 12, 12) and int(y.max()) < 7
    assert sum(len(y) for _, y in data.test.batches(0)) == 9
    with pytest.raises(ConfigError, match="num_classes"):
        check_data({**cfg, "num_classes": 0}, tmp_path)


# --- registry, shape, read-once cache ---------------------------------------------------------------------------


def test_every_dataset_states_its_shape_from_its_yaml():
    shapes = {name: dataset_shape(dataset_config(name)) for name in dataset_names()}
    assert shapes == {
        "cifar10": Shape(3, 32, 10),
        "cifar100": Shape(3, 32, 100),
        "fashion_mnist": Shape(1, 32, 10),
        "imagenet": Shape(3, 224, 1000),
        "synthetic": Shape(3, 32, 10),
    }
    assert dataset_shape(dataset_config("imagenet", crop=227, num_classes=3)) == Shape(3, 227, 3)


def test_imagenet_class_count_must_match_the_config(tmp_path):
    write_folder(tmp_path / "imnet")
    with pytest.raises(DataError, match="set dataset.num_classes=3") as e:
        check_data({**IMAGENET, "num_classes": 1000}, tmp_path)
    assert "\n" not in str(e.value)


def test_check_then_build_reads_the_files_once(tmp_path, monkeypatch):
    write_cifar(tmp_path / "data")
    reads = []
    original = cifar.read_batch
    monkeypatch.setattr(cifar, "read_batch", lambda path, key: reads.append(path.name) or original(path, key))
    common._CACHE.clear()
    check_data(CIFAR10, tmp_path)
    data = build_data(CIFAR10, ctx(tmp_path))
    assert len(reads) == 6 and data.train_size == 100  # 5 training batches + 1 test batch, once
    build_data({**CIFAR10, "normalize": "per_channel"}, ctx(tmp_path))
    assert len(reads) == 6  # a second job of a sweep over the same files: still no read
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_2"
    os.utime(batch, ns=(batch.stat().st_atime_ns, batch.stat().st_mtime_ns + 10**9))
    check_data(CIFAR10, tmp_path)
    assert len(reads) == 12  # a file changed: all read again


# --- normalisation, padding ------------------------------------------------------------------------------------


def _all_batches(mode: str, x: torch.Tensor) -> torch.Tensor:
    """Every training image of one epoch as the loader yields it (no augmentation, no validation split),
    put back in file order by its label (= its index)."""
    cfg = dataset_config("synthetic", val_split=0, augment=[], normalize=mode)
    ids = torch.arange(len(x))
    data = resident_data(
        x, ids, x[:4], ids[:4], num_classes=len(x), cfg=cfg, ctx=ctx(Path("."), batch_size=16)
    )
    batches = list(data.train.batches(0))
    out, order = torch.cat([b for b, _ in batches]), torch.cat([y for _, y in batches])
    assert sorted(order.tolist()) == ids.tolist()
    return out[order.argsort()]


def test_mean_only_normalisation_centres_and_keeps_the_pixel_scale():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), generator=gen, dtype=torch.uint8)
    x[:, 0] //= 4  # channels of different means and spreads: red in 0..63
    raw = x.double()
    out = _all_batches("per_channel_mean", x).double()
    assert out.shape == (64, 3, 8, 8) and out.mean((0, 2, 3)).abs().max() < 1e-4
    assert torch.allclose(out.std((0, 2, 3)), raw.std((0, 2, 3)), rtol=1e-6)  # unchanged, e.g. red ≈ 18.5
    assert torch.allclose(out + raw.mean((0, 2, 3), keepdim=True), raw, atol=1e-4)  # only a shift
    out = _all_batches("per_pixel_mean", x).double()
    assert out.mean(0).abs().max() < 1e-4  # the mean image is zero at every pixel
    assert abs(out.std().item() / (raw - raw.mean(0)).std().item() - 1) < 1e-6
    assert torch.allclose(out + raw.mean(0, keepdim=True), raw, atol=1e-4)
    # the forms that divide: unit std per channel, unit overall std
    assert torch.allclose(
        _all_batches("per_channel", x).double().std((0, 2, 3)), torch.ones(3, dtype=torch.double)
    )
    ratio = (raw - raw.mean(0)).std() / raw.std()  # per_pixel divides by the std of all raw pixels
    assert abs(_all_batches("per_pixel", x).double().std().item() - ratio.item()) < 1e-6


@pytest.mark.parametrize("pad, border", [("mean", {0.0}), ("black", {-100.0})])
def test_crop_padding_is_the_mean_or_black(pad, border):
    x = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    x[::2] = 200  # mean 100: centred pixels are ±100
    cfg = dataset_config(
        "synthetic", val_split=0, augment=["crop"], crop_pad=pad, normalize="per_channel_mean"
    )
    data = resident_data(x, torch.zeros(64, dtype=torch.long), x[:4], torch.zeros(4, dtype=torch.long),
                         num_classes=2, cfg=cfg, ctx=ctx(Path("."), batch_size=64))  # fmt: skip
    out = next(data.train.batches(0))[0]
    values = set(out.unique().tolist())
    assert values == {-100.0, 100.0} | border  # 8×8 images with a 4-pixel pad: most crops show some border


def test_imagenet_mean_only_keeps_raw_rgb_scale(tmp_path):
    write_folder(tmp_path / "imnet", train=2, val=1)
    cfg = {
        **IMAGENET,
        "val_split": 0,
        "lighting": 0.0,
        "test_view": "center",
        "normalize": "per_channel_mean",
    }
    x, _ = next(build_data(cfg, ctx(tmp_path, batch_size=3)).test.batches(0))
    raw, _ = next(
        build_data({**cfg, "normalize": "per_channel"}, ctx(tmp_path, batch_size=3)).test.batches(0)
    )
    mean, std = torch.tensor(A.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(A.IMAGENET_STD).view(1, 3, 1, 1)
    pixels = raw * std + mean  # back to 0..255
    assert torch.allclose(x, pixels - mean, atol=1e-3)  # centred, not divided
    assert torch.allclose(x.std((0, 2, 3)), pixels.std((0, 2, 3)), rtol=1e-5)  # the raw 0..255 spread
    with pytest.raises(ConfigError, match="per_pixel_mean"):
        check_data({**cfg, "normalize": "per_pixel_mean"}, tmp_path)


# --- test views: AlexNet's 10 views, VGG's dense view ------------------------------------------------------------


def test_ten_views_come_from_the_256_centre_square_of_a_256x320_image():
    boxes = A.ten_crop_boxes(320, 256, 224)  # 320 wide, 256 high: the centre square spans x = 32..288
    assert boxes == [
        (32, 0, 256, 224),
        (64, 0, 288, 224),
        (32, 32, 256, 256),
        (64, 32, 288, 256),
        (48, 16, 272, 240),
    ]
    assert all(
        32 <= left and right <= 288 and 0 <= top and bottom <= 256 for left, top, right, bottom in boxes
    )
    pixels = np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8)
    views = A.ten_crop(Image.fromarray(pixels), 224)
    full = torch.from_numpy(pixels).permute(2, 0, 1)
    for view, (left, top, right, bottom) in zip(views[:5], boxes, strict=True):
        assert torch.equal(view, full[:, top:bottom, left:right])
    assert torch.equal(views[5:], views[:5].flip(3))
    assert A.ten_crop_boxes(256, 320, 224)[4] == (16, 48, 240, 272)  # portrait: the square spans y = 32..288


def test_dense_view_is_the_whole_rescaled_image_and_its_flip(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8))
    view = A.TEST_VIEWS["dense"]({"test_resize": 256})(img, random.Random(0))
    assert view.shape == (2, 3, 256, 320) and torch.equal(view[1], view[0].flip(2))
    assert torch.equal(view[0], A.to_tensor(img))  # shorter side already Q: no crop, no resize
    assert A.dense_view(img, 128).shape == (2, 3, 128, 160)
    write_folder(tmp_path / "imnet", val=2, size=(48, 40))  # 6 test images of 48×40
    data = build_data({**IMAGENET, "test_view": "dense"}, ctx(tmp_path, batch_size=4))
    tests = list(data.test.batches(0))
    assert len(data.test) == 6 and [x.shape for x, _ in tests] == [(1, 2, 3, 32, 38)] * 6  # one image a batch
    assert [y.item() for _, y in tests] == [0, 0, 1, 1, 2, 2]


def test_resident_dense_view_pairs_each_image_with_its_flip(tmp_path):
    cfg = dataset_config("synthetic", train_size=32, test_size=10, val_split=0, test_view="dense")
    x, y = next(build_data(cfg, ctx(tmp_path)).test.batches(0))
    assert x.shape == (8, 2, 3, 32, 32) and torch.equal(x[:, 1], x[:, 0].flip(3)) and y.shape == (8,)
    with pytest.raises(ConfigError, match="test_view"):
        check_data({**cfg, "test_view": "five_crop"}, tmp_path)


# --- through the real entry point -----------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_runner_trains_on_a_cifar_directory(workdir):
    write_cifar(workdir / "cifar", per_batch=110, test=260)
    result = run_runner(["dataset=cifar10", "dataset.root=cifar", *TINY], cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = mlflow_runs(workdir)
    assert run.info.status == "FINISHED" and run.data.params["dataset"] == "cifar10"
    assert images_wrong(run.data.metrics["test_top1_error"], 256) in range(257)  # test_subset=256 of 260


@pytest.mark.e2e
def test_runner_without_cifar_fails_in_one_line_and_leaves_no_run(workdir):
    (workdir / "empty").mkdir()
    result = run_runner(["dataset=cifar10", "dataset.root=empty", *TINY], cwd=workdir)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and str(workdir / "empty" / "cifar-10-batches-py") in errors[0], result.stderr
    assert "Traceback" not in result.stderr and mlflow_runs(workdir) == []


@pytest.mark.parametrize("name", ["crop", "flip", "lighting"])
def test_each_rank_augments_its_slice_of_the_global_batch_as_one_process_would(name):
    """DDP: rank r holds images [lo, lo + n) of the global batch; the draws are made for the whole batch, so two
    ranks' halves put together are the one-process batch, image for image."""
    from runner.data.tensor_loader import AUGMENTS

    aug = A.lighting(0.1) if name == "lighting" else AUGMENTS[name]
    x = torch.randn(8, 3, 6, 6) * 50

    def run(part: torch.Tensor, lo: int) -> torch.Tensor:
        return aug(part, torch.Generator().manual_seed(5), lo, 8)

    whole = run(x, 0)
    assert torch.equal(torch.cat([run(x[:3], 0), run(x[3:], 3)]), whole)
    assert not torch.equal(run(x[3:], 3), run(x[3:], 0))  # the offset picks the rank's own draws


class ScriptedRng:
    """A random.Random stand-in: uniform() returns the next scripted value, randint() its lower bound, and both
    record the range they were asked for (an unscripted draw raises IndexError); random() plays the same list."""

    def __init__(self, uniforms: list[float]) -> None:
        self.uniforms, self.ranges = list(uniforms), []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append(("uniform", a, b))
        return self.uniforms.pop(0)

    def randint(self, a: int, b: int) -> int:
        self.ranges.append(("randint", a, b))
        return b

    def random(self) -> float:
        return self.uniforms.pop(0)


def coded_image(w: int, h: int) -> Image.Image:
    """Every pixel different (red = column, green = row): a crop and a resize show where they came from."""
    x, y = np.meshgrid(np.arange(w) * 6, np.arange(h) * 6)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 9)], -1).astype(np.uint8))


def test_random_resized_crop_takes_the_drawn_area_and_aspect():
    """40×30 image, area 25 % (300 px), aspect 4/3: a 20×15 box at the far corner the draws allow, resized."""
    img = coded_image(40, 30)
    rng = ScriptedRng([0.25, math.log(4 / 3)])
    out = A.random_resized_crop(img, 8, rng)
    assert rng.ranges == [("uniform", 0.08, 1.0), ("uniform", math.log(3 / 4), math.log(4 / 3)),
                          ("randint", 0, 20), ("randint", 0, 15)]  # fmt: skip
    assert np.array_equal(
        np.asarray(out), np.asarray(img.crop((20, 15, 40, 30)).resize((8, 8), Image.BILINEAR))
    )


def test_random_resized_crop_may_take_the_whole_image_or_a_single_pixel():
    whole = coded_image(40, 30)
    out = A.random_resized_crop(whole, 8, ScriptedRng([1.0, math.log(4 / 3)]))  # 40×30: exactly the image
    assert np.array_equal(np.asarray(out), np.asarray(whole.resize((8, 8), Image.BILINEAR)))
    tiny = coded_image(4, 4)  # 16 px × 8 % at aspect 3/4: round(√0.96) = 1 by round(√1.71) = 1
    out = A.random_resized_crop(tiny, 2, ScriptedRng([0.08, math.log(3 / 4)]))
    assert np.array_equal(np.asarray(out), np.asarray(tiny.crop((3, 3, 4, 4)).resize((2, 2), Image.BILINEAR)))


def test_random_resized_crop_falls_back_to_the_centre_square_after_ten_misses():
    """A 30×40 portrait cannot hold a 40-wide box: ten tries (no eleventh draw), then its 30×30 centre; a box
    that rounds to 0 pixels (2×2 image, 8 %) is a miss too."""
    img = coded_image(30, 40)
    out = A.random_resized_crop(img, 8, ScriptedRng([1.0, math.log(4 / 3)] * 10))
    assert np.array_equal(
        np.asarray(out), np.asarray(img.crop((0, 5, 30, 35)).resize((8, 8), Image.BILINEAR))
    )
    small = coded_image(2, 2)  # round(√(0.32 · 3/4)) = 0 wide; at aspect 4/3, 1 wide but 0 high
    for aspect in (3 / 4, 4 / 3):
        out = A.random_resized_crop(small, 2, ScriptedRng([0.08, math.log(aspect)] * 10))
        assert np.array_equal(np.asarray(out), np.asarray(small.resize((2, 2), Image.BILINEAR)))


def test_fetch_downloads_through_a_part_file_into_new_folders(tmp_path, monkeypatch):
    """The download lands in `<name>.part` (folders made as needed) and becomes `<name>` once its md5 matches."""
    asked = []

    def download(url: str, target: str) -> None:
        asked.append((url, Path(target).name))
        Path(target).write_bytes(b"payload")

    monkeypatch.setattr(common.urllib.request, "urlretrieve", download)
    target = tmp_path / "a" / "b" / "data.tar.gz"
    common.fetch("https://x/data.tar.gz", target, hashlib.md5(b"payload").hexdigest(), "get it by hand")
    assert asked == [("https://x/data.tar.gz", "data.tar.gz.part")]
    assert target.read_bytes() == b"payload" and sorted(p.name for p in target.parent.iterdir()) == [
        "data.tar.gz"
    ]


def test_files_digest_depends_on_the_files_not_on_where_the_tree_sits(tmp_path, monkeypatch):
    """The same files (names relative to the root, sizes, mtimes) under two roots give one digest, from any cwd."""
    for root in (tmp_path / "one", tmp_path / "two"):
        (root / "train").mkdir(parents=True)
        (root / "train" / "a.jpg").write_bytes(b"abc")
        os.utime(root / "train" / "a.jpg", ns=(1_000_000_000, 1_000_000_000))
    digest = [common.files_digest(r, [r / "train" / "a.jpg"]) for r in (tmp_path / "one", tmp_path / "two")]
    monkeypatch.chdir(tmp_path / "one")
    again = common.files_digest(tmp_path / "two", [tmp_path / "two" / "train" / "a.jpg"])
    assert digest[0] == digest[1] == again
    (tmp_path / "two" / "train" / "a.jpg").write_bytes(b"abcd")  # one more byte
    assert common.files_digest(tmp_path / "two", [tmp_path / "two" / "train" / "a.jpg"]) != digest[0]


def numbered(w: int, h: int) -> Image.Image:
    """An image whose every pixel tells where it is: red = column, green = row."""
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1] = np.arange(w)[None, :], np.arange(h)[:, None]
    return Image.fromarray(pixels)


def test_folder_views_crop_where_they_say_and_flip_below_one_half() -> None:
    img = numbered(7, 9)
    centre = np.asarray(A.center_crop(img, 2))
    assert (centre[0, 0, 0], centre[0, 0, 1]) == (2, 3)  # left (7 − 2) // 2, top (9 − 2) // 2
    rng = ScriptedRng([])
    A.random_crop(img, 2, rng)
    assert rng.ranges == [("randint", 0, 5), ("randint", 0, 7)]  # left in [0, w − size], top in [0, h − size]
    flips = [A.random_flip(img, ScriptedRng([r])) is not img for r in (0.2, 0.4999, 0.5, 0.7)]
    assert flips == [True, True, False, False]
    assert A.random_flip(img, ScriptedRng([0.2])).getpixel((0, 0)) == (6, 0, 0)  # the mirror image


def test_resize_shorter_is_bilinear_and_to_tensor_keeps_bytes() -> None:
    img = Image.fromarray(np.random.RandomState(0).randint(0, 256, (2, 4, 3)).astype(np.uint8))
    out = A.resize_shorter(img, 4)
    assert out.size == (8, 4)
    assert out.tobytes() == img.resize((8, 4), Image.BILINEAR).tobytes()
    assert out.tobytes() != img.resize((8, 4), Image.BICUBIC).tobytes()  # the filter is visible here
    tensor = A.to_tensor(numbered(4, 2))
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 2, 4) and tensor[0, 1, 3] == 3


def test_the_dataset_input_source_is_the_folder_holding_its_files(tmp_path: Path) -> None:
    from runner.data.common import common_folder

    files = [tmp_path / "train" / "a" / "1.jpg", tmp_path / "train" / "b" / "2.jpg"]
    assert common_folder(files) == str((tmp_path / "train").resolve())


def test_resident_data_builds_each_loader_with_the_contexts_rank_seed_and_the_configs_options():
    """The wiring of resident_data as the mutation run found it unchecked: what each loader is given."""
    from runner.data import Provenance
    from runner.data.common import Shard, arrays_digest, normalization
    from runner.data.tensor_loader import random_crop

    gen = torch.Generator().manual_seed(3)
    train_x = torch.randint(0, 256, (60, 3, 6, 6), generator=gen, dtype=torch.uint8)
    train_y, test_x, test_y = torch.arange(60), train_x[:20].flip(0).clone(), torch.arange(100, 120)
    cfg = dataset_config("synthetic", subset=40, test_subset=12, val_split=8, split_seed=4, augment=["flip"],
                         crop_pad="black", normalize="per_pixel", test_view="dense")  # fmt: skip
    two_ranks = Context(torch.device("cpu"), 1, 2, 4, 5, True, Path("."))
    data = resident_data(train_x, train_y, test_x, test_y, num_classes=7, cfg=cfg, ctx=two_ranks, source="/d")
    train_ids, val_ids = common.holdout(40, 8, 4)
    assert data.train.labels.tolist() == train_ids and data.val.labels.tolist() == val_ids
    assert data.test.labels.tolist() == list(range(100, 112))
    assert (data.num_classes, data.in_channels, data.image_size, data.train_size) == (7, 3, 6, 32)
    assert data.provenance == Provenance(
        "/d", arrays_digest((train_x, train_y, test_x, test_y)), {"train": 32, "val": 8, "test": 12}
    )
    mean, std = normalization("per_pixel", train_x[train_ids])
    for loader, n, train in ((data.train, 32, True), (data.val, 8, False), (data.test, 12, False)):
        assert loader.shard == Shard(n, 4, 1, 2, train) and loader.train is train and loader.seed == 5
        assert loader.memory_format == torch.channels_last and loader.pad_with_mean is False
        assert torch.equal(loader.mean, mean) and torch.equal(loader.std, std)
        assert loader.augment == ([random_flip] if train else [])
        assert loader.flip_view is True
    one_rank = Context(torch.device("cpu"), 0, 1, 4, 0, False, Path("."))
    cfg = {**cfg, "subset": None, "test_subset": None, "val_split": 0, "augment": ["crop", "flip"],
           "crop_pad": "mean", "test_view": "whole"}  # fmt: skip
    data = resident_data(train_x, train_y, test_x, test_y, num_classes=7, cfg=cfg, ctx=one_rank)
    assert data.val is None and len(data.test.labels) == 20 and data.train.labels.tolist() == list(range(60))
    assert data.provenance == Provenance(
        "in memory",
        arrays_digest((train_x, train_y, test_x, test_y)),
        {"train": 60, "val": 0, "test": 20},
        generated=True,
    )
    assert data.train.augment == [random_crop, random_flip] and data.train.pad_with_mean is True
    assert data.test.flip_view is False and data.train.memory_format == torch.contiguous_format
    with pytest.raises(ConfigError) as refused:
        resident_data(train_x[:7], train_y[:7], test_x, test_y, num_classes=7, cfg=cfg, ctx=two_ranks)
    assert str(refused.value) == (
        "trainer.batch_size=4 × 2 device(s) is larger than the training set (7 images)"
    )


def test_normalization_statistics_broadcast_over_a_batch_and_an_unknown_mode_is_named():
    x = torch.randint(0, 256, (10, 3, 4, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    shapes = {"per_channel": (1, 3, 1, 1), "per_channel_mean": (1, 3, 1, 1),
              "per_pixel": (1, 3, 4, 5), "per_pixel_mean": (1, 3, 4, 5)}  # fmt: skip
    for mode, mean_shape in shapes.items():
        mean, std = common.normalization(mode, x)
        assert (tuple(mean.shape), tuple(std.shape)) == (mean_shape, (1, 3, 1, 1)), mode
    with pytest.raises(ConfigError) as refused:
        common.normalization("per_image", x)
    assert str(refused.value) == (
        "dataset.normalize='per_image' is unknown; allowed: per_channel, per_channel_mean, per_pixel, per_pixel_mean"
    )


def _uniform_loader(seed: int, start: int = 0, train: bool = True) -> list[torch.Tensor]:
    """Every batch of epoch 0 from `start` on, of 32 identical images: what differs is the augmentation only."""
    x = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).expand(32, 1, 8, 8)
    loader = TensorLoader(x, torch.arange(32), batch_size=8, mean=torch.zeros(1, 1, 1, 1),
                          std=torch.ones(1, 1, 1, 1), train=train, augment=["crop", "flip"], seed=seed)  # fmt: skip
    return [b for b, _ in loader.batches(0, start)]


def test_the_augmentation_is_a_function_of_the_seed_epoch_and_step_alone():
    torch.manual_seed(0)
    first = _uniform_loader(seed=1)
    torch.manual_seed(1)  # the global generator plays no part
    assert all(torch.equal(a, b) for a, b in zip(first, _uniform_loader(seed=1), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(first, _uniform_loader(seed=2), strict=True))
    # resuming at step 2 gives the batches the whole epoch gave from step 2 on, in training and evaluation
    assert all(torch.equal(a, b) for a, b in zip(first[2:], _uniform_loader(1, start=2), strict=True))
    whole = _uniform_loader(1, train=False)
    assert len(whole) == 4 and all(
        torch.equal(a, b) for a, b in zip(whole[2:], _uniform_loader(1, 2, False), strict=True)
    )
    assert torch.equal(whole[0][0, 0], torch.arange(64.0).view(8, 8))  # evaluation: not augmented


def test_a_loader_given_no_rank_options_is_the_single_process_unaugmented_one():
    x = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    one = torch.ones(1, 1, 1, 1)
    for train in (True, False):
        loader = TensorLoader(x, torch.arange(10), batch_size=4, mean=one, std=one, train=train)
        assert loader.shard == common.Shard(10, 4, 0, 1, train) and loader.seed == 0 and loader.augment == []
        assert (loader.memory_format, loader.pad_with_mean, loader.flip_view) == (
            torch.contiguous_format,
            False,
            False,
        )


def test_the_resident_options_are_checked_in_one_line_each():
    from runner.data.tensor_loader import check_options

    cfg = dataset_config("synthetic", val_split=None, subset=None)
    check_options(cfg, 1)  # no validation split: one training image is enough
    refused = [
        ({"normalize": "per_image"}, 100, "dataset.normalize='per_image' is not allowed; allowed: per_channel, "
                                          "per_channel_mean, per_pixel, per_pixel_mean"),
        ({"crop_pad": "edge"}, 100, "dataset.crop_pad='edge' is not allowed; allowed: mean, black"),
        ({"augment": ["crop", "jitter"]}, 100, "dataset.augment: 'jitter' is unknown; allowed: crop, flip"),
        ({"val_split": 40, "subset": 40}, 100, "dataset.val_split=40 must be smaller than the training set (40 images)"),
        ({"val_split": 40}, 30, "dataset.val_split=40 must be smaller than the training set (30 images)"),
    ]  # fmt: skip
    for change, n_train, says in refused:
        with pytest.raises(ConfigError) as error:
            check_options({**cfg, **change}, n_train)
        assert str(error.value) == says
    check_options({**cfg, "val_split": 39, "subset": 40}, 100)


def test_read_once_keys_by_path_and_keeps_the_two_latest(tmp_path):
    files = []
    for name in "abc":
        path = tmp_path / name
        path.write_bytes(b"same size")
        os.utime(path, ns=(10**18, 10**18))  # the same size and mtime: only the path tells them apart
        files.append(path)
    reads = []

    def read(path: Path):
        return lambda: reads.append(path.name) or path.name

    common._CACHE.clear()
    assert [common.read_once("t", [p], read(p)) for p in files[:2]] == ["a", "b"]
    assert common.read_once("t", [files[0]], read(files[0])) == "a" and reads == ["a", "b"]  # both kept
    common.read_once("t", [files[2]], read(files[2]))  # a third: the least recently used (b) goes
    assert common.read_once("t", [files[0]], read(files[0])) == "a" and reads == ["a", "b", "c"]
    assert common.read_once("t", [files[1]], read(files[1])) == "b" and reads == ["a", "b", "c", "b"]
    common._CACHE.clear()


def test_center_crop_rounds_an_odd_margin_down():
    img = coded_image(5, 4)
    assert np.array_equal(np.asarray(A.center_crop(img, 2)), np.asarray(img.crop((1, 1, 3, 3))))


def test_the_augmentation_stream_of_a_seed_is_pinned():
    """Batch i of epoch e is a fixed function of (seed, e, i), across versions too: a run resumed mid-epoch, or a
    re-run of an earlier result, sees the same crops and flips (a change in what the crop draws moves the flips)."""
    first = _uniform_loader(seed=1)[0].to(torch.uint8)
    assert hashlib.sha256(first.numpy().tobytes()).hexdigest()[:16] == "f853dd69a28b3510"


@pytest.mark.parametrize("name", ["crop", "flip", "lighting"])
def test_the_augmentation_runs_on_its_inputs_device_whatever_the_default_device(name):
    from runner.data.tensor_loader import AUGMENTS

    aug = A.lighting(0.1) if name == "lighting" else AUGMENTS[name]
    x = torch.arange(8 * 3 * 6 * 6, dtype=torch.float).view(8, 3, 6, 6)
    gen = torch.Generator().manual_seed(0)
    expected = aug(x, gen, 0, 8)
    gen.manual_seed(0)
    with torch.device("meta"):  # a tensor made without naming the input's device would land here
        out = aug(x, gen, 0, 8)
    assert out.device == x.device and torch.equal(out, expected)


def test_mix_seed_is_pinned_and_stays_below_two_to_the_63():
    """Every generator of the data path is seeded from it (shuffles, crops, flips, the ImageNet views): its
    values are the batches of every earlier run, and Python's and torch's seeds must take them whole."""
    assert [common.mix_seed(0), common.mix_seed(0, 0), common.mix_seed(7, 3, 12), common.mix_seed(1, 2, 3, 1)] == [
        6135053530528137302, 1910967764178331110, 5950340532876031270, 8104976747372857741
    ]  # fmt: skip
    seeds = [common.mix_seed(s, e, i) for s in range(4) for e in range(8) for i in range(32)]
    assert max(seeds) < 2**63 and len(set(seeds)) == len(seeds)


def test_the_command_decodes_its_data_set_beside_the_dry_build_and_never_downloads(tmp_path, monkeypatch):
    """runner.run.preflight.read_data_beside: the job's check afterwards finds the files decoded; nothing is fetched."""
    from runner.run import preflight

    write_cifar(tmp_path / "have" / "data")
    reads, fetches = [], []
    original = cifar.read_batch
    monkeypatch.setattr(cifar, "read_batch", lambda path, key: reads.append(path.name) or original(path, key))
    monkeypatch.setattr(cifar, "fetch", lambda *args, **kwargs: fetches.append(args))
    common._CACHE.clear()
    monkeypatch.chdir(tmp_path / "have")
    preflight.read_data_beside(CIFAR10).join()
    assert len(reads) == 6  # 5 training batches + 1 test batch
    check_data(CIFAR10, tmp_path / "have")
    assert len(reads) == 6  # the job's own check: read already
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    preflight.read_data_beside(
        {**CIFAR10, "download": True}
    ).join()  # the job downloads, after its checks; not this
    assert fetches == [] and list((tmp_path / "empty").iterdir()) == []
    assert (
        preflight.read_data_beside(dataset_config("imagenet")) is None
    )  # a folder set is listed by its check
    common._CACHE.clear()
