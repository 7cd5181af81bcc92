"""The ImageNet folder loader on a tiny tree of real JPEGs: each image's own draws, the lighting noise of a seed,
and the memory format of the batches."""

from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import IMAGENET, ctx, write_folder
from PIL import Image

from runner.data import Context, build_data, check_data, imagenet
from runner.data import augment as A
from runner.data.common import mix_seed
from runner.errors import ConfigError, DataError


def draws(img: Image.Image, rng: random.Random) -> torch.Tensor:
    """A view that shows what it was given: the image's mode and size, and the first draw of its generator."""
    return torch.tensor([float(img.mode == "RGB"), *img.size, rng.random()], dtype=torch.float64)


def test_each_image_draws_its_view_from_the_seed_the_epoch_and_its_own_index(tmp_path: Path) -> None:
    """Two identical files still get different crops and flips: the generator of image i in epoch e is seeded by
    (seed, e, i) alone, so the same key gives the same view again and in any worker."""
    for name in ("a.png", "b.png"):
        Image.new("L", (5, 4), 128).save(tmp_path / name)  # greyscale: the view gets RGB
    folder = imagenet.ImageFolder([(str(tmp_path / "a.png"), 0), (str(tmp_path / "b.png"), 2)], draws, seed=7)
    view, label = folder[(3, 1)]
    assert label == 2 and view[:3].tolist() == [1.0, 5.0, 4.0]
    assert view[3].item() == random.Random(mix_seed(7, 3, 1)).random()
    firsts = {folder[(epoch, i)][0][3].item() for epoch in range(3) for i in range(2)}
    assert len(firsts) == 6  # every (epoch, image) its own draw
    assert torch.equal(folder[(3, 1)][0], view)
    assert imagenet.ImageFolder(folder.samples, draws, seed=8)[(3, 1)][0][3].item() != view[3].item()


def test_an_image_that_does_not_decode_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    folder = imagenet.ImageFolder([(str(bad), 0)], draws, seed=0)
    with pytest.raises(DataError) as refused:
        folder[(0, 0)]
    message = str(refused.value)
    assert message.startswith(f"{bad}: cannot decode image (") and message.endswith("); delete or replace it")


def test_the_lighting_noise_of_a_seed_is_pinned(tmp_path: Path) -> None:
    """AlexNet's PCA colour shift (Sec. 4.1, α ~ N(0, 0.1)) is one RGB offset per image, drawn for step i of epoch e
    from (seed, e, i) only: the same across versions, so a resumed or repeated run sees the same colours. It is
    read here as the difference to the same loader without lighting, which does not depend on the JPEG decoder."""
    write_folder(tmp_path / "imnet", train=2, val=1)
    cfg = {**IMAGENET, "val_split": 0}
    lit = build_data(cfg, ctx(tmp_path, batch_size=3, seed=4)).train
    plain = build_data({**cfg, "lighting": 0.0}, ctx(tmp_path, batch_size=3, seed=4)).train
    std = torch.tensor(A.IMAGENET_STD).view(1, 3, 1, 1)
    shifts = {}
    for epoch in (0, 1):
        for step, ((a, ya), (b, yb)) in enumerate(zip(lit.batches(epoch), plain.batches(epoch), strict=True)):
            assert torch.equal(ya, yb)
            shift = (a - b) * std  # back on the 0..255 scale
            assert torch.allclose(
                shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-3
            )  # one offset per image
            shifts[epoch, step] = shift[:, :, 0, 0]
    assert len(shifts) == 4
    expected = {
        (0, 0): [[-2.775, -2.572, -2.549], [3.645, 3.524, 3.298], [-1.589, -1.709, -1.382]],
        (0, 1): [[0.935, 0.790, 0.424], [3.088, 3.302, 3.235], [0.539, 1.061, 1.923]],
        (1, 0): [[-2.971, -3.216, -2.967], [4.180, 3.878, 3.670], [0.322, 0.508, 0.569]],
    }
    for key, values in expected.items():
        assert torch.allclose(shifts[key], torch.tensor(values), atol=2e-3), (key, shifts[key])


def test_training_batches_come_in_the_asked_memory_format_and_multi_view_ones_as_they_are(
    tmp_path: Path,
) -> None:
    write_folder(tmp_path / "imnet", train=2, val=2)
    channels_last = Context(torch.device("cpu"), 0, 1, 3, 0, True, tmp_path)
    data = build_data({**IMAGENET, "val_split": 0}, channels_last)
    for x, _ in data.train.batches(0):
        assert x.shape == (3, 3, 24, 24) and x.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()
    tests = list(data.test.batches(0))  # ten_crop: (N, 10, C, H, W), which has no channels_last form
    assert [x.shape for x, _ in tests] == [(3, 10, 3, 24, 24), (3, 10, 3, 24, 24)]
    default = build_data({**IMAGENET, "val_split": 0}, ctx(tmp_path, batch_size=3))
    assert all(x.is_contiguous() for x, _ in default.train.batches(0))


def test_a_greyscale_or_png_image_in_the_tree_is_read_as_rgb(tmp_path: Path) -> None:
    write_folder(tmp_path / "imnet", train=2, val=1)
    Image.fromarray(np.full((40, 48), 200, np.uint8), "L").save(
        tmp_path / "imnet" / "train" / "cat" / "grey.png"
    )
    data = build_data({**IMAGENET, "val_split": 0, "lighting": 0.0}, ctx(tmp_path, batch_size=7))
    ((x, y),) = list(data.train.batches(0))
    assert x.shape == (7, 3, 24, 24) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 2, 2]


def test_a_cpu_run_iterates_without_warnings(tmp_path: Path) -> None:
    """Batches are page-locked only for a CUDA device: asked on a CPU-only machine, torch warns on every pass."""
    write_folder(tmp_path / "imnet", train=2, val=1)
    data = build_data({**IMAGENET, "val_split": 0}, ctx(tmp_path, batch_size=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(data.train.batches(0))) == 2 and len(list(data.test.batches(0))) == 1


def test_download_is_refused_with_how_to_get_imagenet(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        check_data({**IMAGENET, "download": True}, tmp_path)
    assert str(refused.value) == (
        "dataset.download=true is not possible for ImageNet; download ILSVRC-2012 from https://image-net.org "
        "(registration required), unpack it as train/ and val/ with one folder per class, and set dataset.root "
        "to the folder holding them"
    )


def test_the_provenance_is_the_root_and_a_digest_of_the_tree_wherever_it_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one tree (same names, sizes, mtimes) give one digest, whatever the directory runner starts
    in; a file touched gives another. Only rank 0 logs it."""
    write_folder(tmp_path / "one" / "imnet", train=2, val=1)
    shutil.copytree(tmp_path / "one", tmp_path / "two")  # copy2: sizes and mtimes kept
    monkeypatch.chdir(tmp_path)

    def provenance(where: str, rank: int = 0):
        context = Context(torch.device("cpu"), rank, 2 if rank else 1, 2, 0, False, tmp_path / where)
        return build_data({**IMAGENET, "val_split": 2}, context).provenance

    one, two = provenance("one"), provenance("two")
    assert one.source == str(tmp_path / "one" / "imnet") and two.source == str(tmp_path / "two" / "imnet")
    assert one.digest == two.digest and len(one.digest) == 12 and not one.generated
    assert one.sizes == {"train": 4, "val": 2, "test": 3}
    jpeg = tmp_path / "two" / "imnet" / "val" / "dog" / "0.jpg"
    os.utime(jpeg, ns=(jpeg.stat().st_atime_ns, jpeg.stat().st_mtime_ns + 10**9))
    assert provenance("two").digest != one.digest
    assert provenance("one", rank=1) is None


def test_a_val_class_folder_that_train_lacks_is_refused_by_name(tmp_path: Path) -> None:
    """Labels are train/'s folder indices: a val/ folder outside them would have no label to get."""
    for split, classes in (("train", ("cat", "dog", "eel")), ("val", ("cat", "fox"))):
        for name in classes:
            (tmp_path / "imnet" / split / name).mkdir(parents=True)
            (tmp_path / "imnet" / split / name / "0.jpg").touch()  # only the name is read by the scan
    with pytest.raises(DataError) as refused:
        check_data(IMAGENET, tmp_path)
    fox = tmp_path / "imnet" / "val" / "fox"
    assert str(refused.value) == f"{fox}: class folder not present in train/; val/ must use train/'s classes"


def test_a_subset_is_a_seeded_sorted_choice_of_distinct_indices_and_none_or_too_many_is_all() -> None:
    """dataset.subset / test_subset: k of n in file order, the same k for the same split_seed (pinned: a rerun
    trains on the same images), all n without a subset or with one at least as large."""
    assert imagenet._pick(10, 4, seed=3) == [0, 3, 6, 7]
    assert imagenet._pick(10, 4, seed=4) == [0, 4, 6, 9]
    assert imagenet._pick(5, None, 3) == imagenet._pick(5, 5, 3) == imagenet._pick(5, 9, 3) == [0, 1, 2, 3, 4]
