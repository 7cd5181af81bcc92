"""Fashion-MNIST's IDX reader and where it looks for the files, on small files in the real format."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import write_fashion, write_idx

from runner.data import check_data, common, dataset_config, fashion_mnist
from runner.errors import ConfigError, DataError

FASHION = dataset_config("fashion_mnist", root="data", val_split=0)
HOW_TO_GET = "apt-get install dataset-fashion-mnist (or dataset.download=true on a machine that is online)"


@pytest.fixture(autouse=True)
def no_system_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Debian's copy (/usr/share/datasets/fashion-mnist) may be installed here: each test says what it holds."""
    system = tmp_path / "system"
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    common._CACHE.clear()
    yield system
    common._CACHE.clear()


def write_plain(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file (as Debian ships them, without .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


# Every rank the format allows (1..4), with sizes that need all four bytes of their big-endian field.
SHAPES = [(300,), (2, 300), (1, 2, 70000), (2, 3, 2, 300)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "plain"])
def test_an_idx_file_reads_back_as_written(tmp_path: Path, shape: tuple[int, ...], compressed: bool) -> None:
    array = (np.arange(int(np.prod(shape))) % 251).astype(np.uint8).reshape(shape)
    path = tmp_path / ("a.gz" if compressed else "a")
    (write_idx if compressed else write_plain)(path, array)
    out = fashion_mnist.read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape and np.array_equal(out, array)


@pytest.mark.parametrize(
    "head",
    [
        b"",  # empty
        b"\x00\x00",  # shorter than the magic number
        b"\x00\x00\x08",
        b"\x01\x00\x08\x01",  # each byte of the magic wrong in turn
        b"\x00\x01\x08\x01",
        b"\x00\x00\x0d\x01",  # 0x0D: float data
        b"\x00\x00\x08\x00",  # rank 0
        b"\x00\x00\x08\x05",  # rank 5
    ],
    ids=lambda head: head.hex() or "empty",
)
def test_a_file_without_the_idx_uint8_magic_is_refused_showing_its_first_bytes(
    tmp_path: Path, head: bytes
) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(head + bytes(8) if len(head) == 4 else head)
    with pytest.raises(DataError) as refused:
        fashion_mnist.read_idx(path)
    assert str(refused.value) == f"{path}: not an IDX uint8 file (wrong magic number {head.hex()})"


def test_an_idx_file_with_more_data_than_its_header_says_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    write_plain(path, np.arange(5))
    path.write_bytes(path.read_bytes() + b"\x07")
    with pytest.raises(DataError) as refused:
        fashion_mnist.read_idx(path)
    assert str(refused.value) == f"{path}: truncated: header says (5,), found 6 bytes of data"


def test_an_unreadable_gz_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError) as refused:
        fashion_mnist.read_idx(path)
    assert str(refused.value).startswith(f"{path}: cannot read (")


def test_a_mistyped_root_is_refused_rather_than_replaced(tmp_path: Path) -> None:
    """dataset.root names a folder that is not there: an error, not a silent fall back to ./data or Debian's copy."""
    write_fashion(tmp_path / "data")  # what a fall back would read
    with pytest.raises(DataError) as refused:
        fashion_mnist.locate({**FASHION, "root": "dta"}, tmp_path)
    assert str(refused.value) == (
        "dataset.root=dta does not exist; allowed: an existing directory, or null for ./data"
    )


def test_missing_files_say_where_they_were_looked_for_and_nothing_is_downloaded_unasked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_copy: Path
) -> None:
    monkeypatch.setattr(fashion_mnist, "fetch", lambda *args: pytest.fail(f"fetched {args[0]}"))
    with pytest.raises(DataError) as refused:
        fashion_mnist.locate({**FASHION, "root": None}, tmp_path)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert str(refused.value) == (
        f"Fashion-MNIST file train-images-idx3-ubyte.gz not found in {raw} and {no_system_copy}; {HOW_TO_GET}"
    )
    write_fashion(tmp_path / "data")
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()  # the first file is there, a later one is not
    with pytest.raises(DataError, match="^Fashion-MNIST file t10k-labels-idx1-ubyte.gz not found in "):
        fashion_mnist.locate({**FASHION, "root": None}, tmp_path)


def test_a_download_into_a_new_root_lands_in_its_raw_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download=true with a root that does not exist yet: the files are fetched into <root>/FashionMNIST/raw."""
    source = write_fashion(tmp_path / "source")
    fetched = []

    def fetch(url: str, target: Path, md5: str, how: str) -> None:
        fetched.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((source / target.name).read_bytes())

    monkeypatch.setattr(fashion_mnist, "fetch", fetch)
    paths = fashion_mnist.locate({**FASHION, "root": "new", "download": True}, tmp_path)
    raw = tmp_path / "new" / "FashionMNIST" / "raw"
    assert fetched == [raw / f"{name}.gz" for name in fashion_mnist.FILES]
    assert paths == {name: raw / f"{name}.gz" for name in fashion_mnist.FILES}


def test_the_files_are_looked_for_in_the_root_first_then_in_debians_copy(
    tmp_path: Path, no_system_copy: Path
) -> None:
    """Debian ships the four files uncompressed; the root's own copy, gzipped or not, wins over it."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        write_plain(no_system_copy / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_plain(no_system_copy / f"{prefix}-labels-idx1-ubyte", np.arange(n))
    train_x, train_y, test_x, test_y = fashion_mnist.load({**FASHION, "root": None}, tmp_path)
    assert (len(train_x), len(test_x), train_y.tolist()) == (5, 3, [0, 1, 2, 3, 4])
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    write_plain(raw / "train-labels-idx1-ubyte", np.full(5, 9))
    paths = fashion_mnist.locate({**FASHION, "root": None}, tmp_path)
    assert paths["train-labels-idx1-ubyte"] == raw / "train-labels-idx1-ubyte"
    assert paths["train-images-idx3-ubyte"] == no_system_copy / "train-images-idx3-ubyte"
    assert fashion_mnist.load({**FASHION, "root": None}, tmp_path)[1].tolist() == [9] * 5
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(b"")
    )  # a .gz beside the plain one is read first
    assert fashion_mnist.find_file("train-labels-idx1-ubyte", [raw]) == raw / "train-labels-idx1-ubyte.gz"


def test_the_check_reads_the_files_and_the_split_must_leave_training_images(tmp_path: Path) -> None:
    write_fashion(tmp_path / "data")  # 12 training images
    check_data({**FASHION, "val_split": 11}, tmp_path)
    with pytest.raises(ConfigError) as refused:
        check_data({**FASHION, "val_split": 12}, tmp_path)
    assert str(refused.value) == "dataset.val_split=12 must be smaller than the training set (12 images)"


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    raw = write_fashion(tmp_path / "data")
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(5))  # 6 test images
    with pytest.raises(DataError) as refused:
        fashion_mnist.load(FASHION, tmp_path)
    assert str(refused.value) == f"Fashion-MNIST image and label counts differ in {raw.resolve()}"


@pytest.mark.parametrize(
    ("head", "announced", "found"),
    [
        # Three sizes announced, half of one present: once read as an empty (0, 0, 0) array.
        (b"\x00\x00\x08\x03\x00\x00", 3, 2),
        # A valid magic number and nothing after it: a cut file, not a wrong magic number.
        (b"\x00\x00\x08\x01", 1, 0),
    ],
    ids=lambda v: v.hex() if isinstance(v, bytes) else None,
)
def test_a_file_cut_inside_its_header_is_refused(
    tmp_path: Path, head: bytes, announced: int, found: int
) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(head)
    with pytest.raises(DataError) as refused:
        fashion_mnist.read_idx(path)
    assert str(refused.value) == (
        f"{path}: truncated: header announces {announced} sizes, found {found} of their bytes"
    )
