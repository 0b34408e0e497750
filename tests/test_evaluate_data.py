"""nas.evaluate.data: embedded MNIST, CIFAR-10 python folders, image folders, errors."""
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from nas.errors import NasError
from nas.evaluate.data import DatasetError, load_dataset


# ----------------------------------------------------------------- embedded MNIST
def test_mnist_default_split_is_stratified_padded_and_normalised():
    d = load_dataset()
    assert d.train_x.shape == (4000, 1, 32, 32) and d.val_x.shape == (1000, 1, 32, 32)
    assert d.train_x.dtype == torch.float32
    assert torch.bincount(d.train_y).tolist() == [400] * 10
    assert torch.bincount(d.val_y).tolist() == [100] * 10
    assert (d.num_classes, d.in_channels, d.resolution) == (10, 1, 32)
    assert abs(d.train_x.mean().item()) < 1e-3 and abs(d.train_x.std().item() - 1) < 1e-3
    # 28x28 digits zero-padded by 2: the border is the background value everywhere
    border = d.train_x[:, :, :2, :]
    assert torch.allclose(border, border.flatten().min().expand_as(border))


def test_mnist_split_depends_on_seed_only():
    a, b, c = (load_dataset(limit=100, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.bincount(a.train_y).tolist() == [8] * 10   # limit 100 -> 10 per class
    assert len(set(map(tuple, a.train_x.flatten(1).tolist())) &
               set(map(tuple, a.val_x.flatten(1).tolist()))) == 0


def test_mnist_downscaled_below_native_size():
    d = load_dataset(resolution=16, limit=50)
    assert d.train_x.shape[1:] == (1, 16, 16)


@pytest.mark.parametrize("kwargs", [{"resolution": 2}, {"val_fraction": 1.0}, {"limit": 1}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(DatasetError):
        load_dataset(**kwargs)


def test_unknown_name_lists_accepted_forms():
    with pytest.raises(DatasetError, match="cifar10:PATH") as e:
        load_dataset("imagenet")
    assert isinstance(e.value, NasError)


# ----------------------------------------------------------------- CIFAR-10 folders
def _write_cifar(root, per_batch=4, protocol=2, rng=np.random.default_rng(0)):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(per_batch) + i * per_batch) % 10]
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"batch_label": b"training batch", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f, protocol=protocol)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in
                                      "airplane automobile bird cat deer dog frog horse ship truck".split()],
                     b"num_vis": 3072}, f, protocol=protocol)
    return root


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_folder_loads_with_the_restricted_unpickler(tmp_path, protocol):
    root = _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    d = load_dataset(f"cifar10:{tmp_path}")          # the parent folder works too
    assert d.in_channels == 3 and d.num_classes == 10 and d.resolution == 32
    assert len(d.train_y) + len(d.val_y) == 20
    assert d.classes[0] == "airplane" and d.classes[-1] == "truck"
    assert d.train_x.shape[1:] == (3, 32, 32)
    assert sorted(torch.cat([d.train_y, d.val_y]).tolist()) == sorted([v % 10 for v in range(4, 24)])
    d16 = load_dataset(f"cifar10:{root}", resolution=16)
    assert d16.train_x.shape[1:] == (3, 16, 16)


def test_cifar_pixels_keep_channel_planes(tmp_path):
    root = _write_cifar(tmp_path / "c")
    with open(root / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]   # trusted: written by this test
    d = load_dataset(f"cifar10:{root}", val_fraction=0.5)
    all_x = torch.cat([d.train_x, d.val_x])
    # undo the normalisation per channel and find the first image of batch 1
    first = torch.from_numpy(raw[0].reshape(3, 32, 32).astype(np.float32))
    corr = [np.corrcoef(first.flatten(), x.flatten())[0, 1] for x in all_x]
    assert max(corr) > 0.999


def test_cifar_missing_batch_names_file_and_layout(tmp_path):
    root = _write_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3") as e:
        load_dataset(f"cifar10:{root}")
    assert str(root) in str(e.value) and "batches.meta" in str(e.value)


def test_cifar_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}")


def test_cifar_garbage_file_is_a_dataset_error(tmp_path):
    root = _write_cifar(tmp_path / "c")
    (root / "data_batch_2").write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_dataset(f"cifar10:{root}")


def test_cifar_wrong_array_shape_is_rejected(tmp_path):
    root = _write_cifar(tmp_path / "c")
    with open(root / "data_batch_4", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, f)
    with pytest.raises(DatasetError, match="3072"):
        load_dataset(f"cifar10:{root}")


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_cifar_pickle_cannot_run_code(tmp_path):
    root = _write_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Exploit(str(marker)), b"labels": []}, f)
    with pytest.raises(DatasetError, match="refusing to load global"):
        load_dataset(f"cifar10:{root}")
    assert not marker.exists()


# ----------------------------------------------------------------- image folders
def _write_folder(root, classes=("cat", "dog", "eel"), per_class=4, mode="RGB"):
    rng = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (20 + 3 * i, 15 + 2 * i)             # differing sizes: resized on load
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / c / f"{i}.png")
    return root


def test_image_folder_loads_resized_tensors(tmp_path):
    root = _write_folder(tmp_path / "imgs")
    (root / "notes.txt").write_text("ignored: not a class folder")
    d = load_dataset(f"folder:{root}", resolution=24)
    assert d.classes == ("cat", "dog", "eel") and d.num_classes == 3 and d.in_channels == 3
    assert d.train_x.shape[1:] == (3, 24, 24)
    assert len(d.train_y) + len(d.val_y) == 12
    assert set(d.val_y.tolist()) == {0, 1, 2}
    plain = load_dataset(str(root), resolution=24)     # a plain existing path is a folder
    assert torch.equal(plain.train_x, d.train_x)


def test_grey_image_folder_has_one_channel(tmp_path):
    d = load_dataset(f"folder:{_write_folder(tmp_path / 'g', mode='L')}", resolution=8)
    assert d.in_channels == 1 and d.train_x.shape[1:] == (1, 8, 8)


def test_image_folder_with_train_and_val_subfolders(tmp_path):
    _write_folder(tmp_path / "train", per_class=3)
    _write_folder(tmp_path / "val", per_class=2)
    d = load_dataset(f"folder:{tmp_path}", resolution=8)
    assert len(d.train_y) == 9 and len(d.val_y) == 6


def test_image_folder_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    _write_folder(tmp_path / "one", classes=("only",))
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(f"folder:{tmp_path / 'one'}")
    root = _write_folder(tmp_path / "empty")
    (root / "zebra").mkdir()
    with pytest.raises(DatasetError, match="zebra.*no image files"):
        load_dataset(f"folder:{root}")


def test_corrupt_image_names_the_file(tmp_path):
    root = _write_folder(tmp_path / "bad")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="broken.png") as e:
        load_dataset(f"folder:{root}")
    assert "root/<class_name>" in str(e.value)


def test_repr_is_one_short_line_not_tensors():
    d = load_dataset("mnist", resolution=16, limit=200)
    text = repr(d)
    assert text == "Dataset('mnist': 160 train + 40 val images of 1x16x16, 10 classes, on cpu)"
    assert str(d) == text and "tensor" not in text


def test_dataset_larger_than_memory_is_refused_before_allocating():
    with pytest.raises(DatasetError, match=r"5,000 images of 1x20000x20000 take 8000.0 GB"):
        load_dataset("mnist", resolution=20_000)
