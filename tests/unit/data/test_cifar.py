"""CIFAR's reader on small files in the real format: the batches as distributed (Python 2 pickles), the checks on
what a batch holds, the labels' range, and the download's unpacking and its messages."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import write_cifar

from runner.data import cifar, common, dataset_config
from runner.errors import DataError

CIFAR10 = dataset_config("cifar10", val_split=0)
LAYOUT = cifar.LAYOUTS["cifar10"]


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the CIFAR batches were pickled (cPickle, protocol 2): read
    back with encoding="bytes" they are bytes again, with any other encoding they become text."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def write_batch(path: Path, batch: dict, py2: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    (Py2Pickler(buffer, protocol=2) if py2 else pickle.Pickler(buffer)).dump(batch)
    path.write_bytes(buffer.getvalue())


def test_batches_pickled_by_python_2_read_with_their_byte_string_keys(tmp_path: Path) -> None:
    """The official batches are Python 2 pickles: their keys and pixel bytes are byte strings only when read
    with encoding="bytes" (read as text, b'data' is missing and the pixels are no longer bytes)."""
    data = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    write_batch(
        path, {b"batch_label": b"training batch 1 of 5", b"data": data, b"labels": [7, 0, 9]}, py2=True
    )
    images, labels = cifar.read_batch(path, b"labels")
    assert images.dtype == np.uint8 and images.shape == (3, 3, 32, 32)
    assert np.array_equal(images, data.reshape(3, 3, 32, 32))  # rows of 1024 R, then G, then B
    assert labels.dtype == np.int64 and labels.tolist() == [7, 0, 9]


def test_a_whole_python_2_data_set_loads(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "data", per_batch=2, test=3)
    folder = tmp_path / "data" / LAYOUT.folder
    for name, (data, labels) in written.items():  # the same content, pickled as the official files are
        write_batch(folder / name, {b"data": data, b"labels": labels.tolist()}, py2=True)
    common._CACHE.clear()
    train_x, train_y, test_x, test_y, classes = cifar.load(CIFAR10, tmp_path)
    common._CACHE.clear()
    assert (train_x.shape, test_x.shape, classes) == ((10, 3, 32, 32), (3, 3, 32, 32), 10)
    assert torch.equal(test_x, torch.from_numpy(written["test_batch"][0].reshape(3, 3, 32, 32)))
    assert train_y.tolist() == [v for name in LAYOUT.train for v in written[name][1].tolist()]


@pytest.mark.parametrize("stored", ["int64 array", "nested list"])
def test_a_batch_reads_as_uint8_images_whatever_integer_type_it_stores(tmp_path: Path, stored: str) -> None:
    pixels = np.arange(2 * 3072).reshape(2, 3072) % 256
    path = tmp_path / "batch"
    write_batch(path, {b"data": pixels if stored == "int64 array" else pixels.tolist(), b"labels": [1, 2]})
    images, labels = cifar.read_batch(path, b"labels")
    assert images.dtype == np.uint8 and np.array_equal(images.reshape(2, 3072), pixels)
    assert labels.dtype == np.int64


@pytest.mark.parametrize(
    "data, labels, found",
    [
        (np.zeros((4, 3000), np.uint8), [0] * 4, "(4, 3000) and 4"),  # rows of another image size
        (np.zeros(3072, np.uint8), [0], "(3072,) and 1"),  # one flat image: not (N, 3072)
        (np.zeros((4, 3072), np.uint8), [0] * 3, "(4, 3072) and 3"),  # a label short
        (np.zeros((4, 3072), np.uint8), [0] * 5, "(4, 3072) and 5"),  # a label too many
    ],
)
def test_a_batch_of_the_wrong_shape_is_refused_naming_what_it_holds(
    tmp_path: Path, data: np.ndarray, labels: list[int], found: str
) -> None:
    path = tmp_path / "data_batch_1"
    write_batch(path, {b"data": data, b"labels": labels})
    with pytest.raises(DataError) as refused:
        cifar.read_batch(path, b"labels")
    assert str(refused.value) == f"{path}: expected b'data' of shape (N, 3072) and N labels, found {found}"


def test_a_batch_without_its_label_key_is_not_a_cifar_batch(tmp_path: Path) -> None:
    """A CIFAR-10 batch read as CIFAR-100 has b'labels', not b'fine_labels'."""
    path = tmp_path / "train"
    write_batch(path, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(DataError) as refused:
        cifar.read_batch(path, b"fine_labels")
    assert str(refused.value) == (
        f"{path}: not a readable CIFAR batch (KeyError: b'fine_labels'); delete it and rerun with dataset.download=true"
    )


@pytest.mark.parametrize("bad, split", [(10, "train"), (-1, "train"), (10, "test"), (-3, "test")])
def test_labels_outside_the_classes_are_refused(tmp_path: Path, bad: int, split: str) -> None:
    """One label out of 0..9, above or below, in either split: the files are not CIFAR-10."""
    written = write_cifar(tmp_path / "data", per_batch=2, test=3)
    folder = tmp_path / "data" / LAYOUT.folder
    name = "data_batch_4" if split == "train" else "test_batch"
    data, labels = written[name]
    write_batch(folder / name, {b"data": data, b"labels": [bad, *labels.tolist()[1:]]})
    with pytest.raises(DataError) as refused:
        cifar._decode(LAYOUT, folder)
    assert str(refused.value) == f"{folder}: labels outside 0..9; the files are not CIFAR-10"


def test_labels_may_span_every_class(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "data", per_batch=2, test=3)
    folder = tmp_path / "data" / LAYOUT.folder
    data, _ = written["test_batch"]
    write_batch(folder / "test_batch", {b"data": data, b"labels": [0, 9, 5]})
    assert cifar._decode(LAYOUT, folder)[3].tolist() == [0, 9, 5]


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _no_fetch(*args: object) -> None:
    pytest.fail(f"fetched {args[0]}")


def test_a_downloaded_tarball_lacking_a_batch_names_the_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tarball already in the root is unpacked (not fetched again); what it did not provide is named."""
    source = tmp_path / "source"
    write_cifar(source, per_batch=2, test=3)
    members = {
        f"{LAYOUT.folder}/{name}": (source / LAYOUT.folder / name).read_bytes() for name in LAYOUT.train
    }
    root = tmp_path / "data"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(_tarball(members))  # no test_batch
    monkeypatch.setattr(cifar, "fetch", _no_fetch)
    with pytest.raises(DataError) as refused:
        cifar.locate({**CIFAR10, "download": True}, tmp_path)
    assert str(refused.value) == (
        f"CIFAR-10 not found: {root / LAYOUT.folder / 'test_batch'} is missing; rerun with dataset.download=true "
        f"(fetches {LAYOUT.url}) or set dataset.root to the folder holding cifar-10-batches-py/"
    )
    assert (root / LAYOUT.folder / "data_batch_5").is_file()  # what it held was unpacked


def test_a_tarball_member_that_would_land_outside_the_root_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpacked with tarfile's "data" filter: a member path climbing out of the root is an error, not a write."""
    root = tmp_path / "data"
    root.mkdir()
    tarball = root / "cifar-10-python.tar.gz"
    tarball.write_bytes(_tarball({f"{LAYOUT.folder}/x": b"ok", "../escaped.txt": b"outside"}))
    monkeypatch.setattr(cifar, "fetch", _no_fetch)
    with pytest.raises(DataError) as refused:
        cifar.download(LAYOUT, root)
    message = str(refused.value)
    assert message.startswith(f"{tarball}: cannot unpack (") and message.endswith(
        "); delete it and run again"
    )
    assert "escaped.txt" in message and not (tmp_path / "escaped.txt").exists()


def test_a_corrupt_tarball_is_named_with_how_to_recover(tmp_path: Path) -> None:
    tarball = tmp_path / "cifar-10-python.tar.gz"
    tarball.write_bytes(b"not a gzip stream")
    with pytest.raises(DataError) as refused:
        cifar.download(LAYOUT, tmp_path)
    assert str(refused.value).startswith(f"{tarball}: cannot unpack (")
    assert str(refused.value).endswith("); delete it and run again")


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_download_offline_says_how_to_fetch_and_unpack_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    def offline(url: str, target: str) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(common.urllib.request, "urlretrieve", offline)
    layout = cifar.LAYOUTS[kind]
    tarball = layout.url.rsplit("/", 1)[1]
    with pytest.raises(DataError) as refused:
        cifar.download(layout, tmp_path)
    assert str(refused.value) == (
        f"cannot download {layout.url} (Network is unreachable); on a machine that is online run "
        f"`curl -O {layout.url} && tar xzf {tarball} -C {tmp_path}`"
    )


def test_an_unpacked_data_set_is_not_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(tmp_path / "data", per_batch=2, test=3)
    monkeypatch.setattr(cifar, "fetch", _no_fetch)
    assert cifar.locate({**CIFAR10, "download": True}, tmp_path) == (
        LAYOUT,
        tmp_path / "data" / LAYOUT.folder,
    )


def test_a_cifar100_download_fetches_its_own_tarball_with_its_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = []
    monkeypatch.setattr(cifar, "fetch", lambda *args: asked.append(args))
    with pytest.raises(DataError):
        cifar.download(cifar.LAYOUTS["cifar100"], tmp_path)  # nothing was fetched, so nothing unpacks
    assert [args[:3] for args in asked] == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            tmp_path / "cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        )
    ]
