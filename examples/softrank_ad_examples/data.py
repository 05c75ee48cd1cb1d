"""CIFAR-10/100 discovery: torchvision's on-disk layout, an ImageFolder tree, or a download.

Looked for, in order, under ``data_dir``:

1. torchvision's layout: ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``) or
   ``cifar-100-python/`` (``train``, ``test``), the pickled batches of the official release. They
   are read directly, so a copy made by any tool works (torchvision's md5 check is not needed);
2. an ImageFolder tree: ``train/<class>/*`` and ``test/<class>/*`` (e.g. the JPEG copy of CIFAR-10);
3. with ``download=True``, torchvision's download into ``data_dir`` and then (1).

Nothing found raises :class:`DatasetNotFound` with a message that says what was looked for.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

PICKLE_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


class DatasetError(RuntimeError):
    """A dataset that cannot be used as it is; the message names the file or folder."""


class DatasetNotFound(DatasetError):
    """No dataset in any supported layout, and none could be downloaded."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class PickledCifar(Dataset):
    """The official CIFAR python batches: uint8 (N, 3072) rows and integer labels."""

    def __init__(self, files: list[Path], label_key: bytes, transform=None) -> None:
        images, labels = [], []
        for f in files:
            with open(f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[label_key])
        self.images = np.concatenate(images).transpose(0, 2, 3, 1)  # HWC for PIL-style transforms
        self.targets = list(map(int, labels))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), self.targets[i]


def crop_and_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The training augmentation of every script here (the paper's protocol, docs/method.md §7):
    per image of a (B, C, 32, 32) batch in [0, 1], a random 32×32 crop of the image padded by 4
    zeros, then a horizontal flip with probability 1/2, drawn from ``generator`` (the global RNG
    when None)."""
    x = F.pad(images, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (2, len(images)), generator=generator).tolist()
    x = torch.stack([img[:, b : b + 32, a : a + 32] for img, a, b in zip(x, dx, dy)])
    flip = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


class CropAndFlip:
    """:func:`crop_and_flip` as a per-image transform for datasets (after ``ToTensor``)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return crop_and_flip(image[None])[0]


def transforms_for(train: bool, augment: bool = True):
    """ToTensor, then :class:`CropAndFlip` for training; inputs stay in [0, 1]."""
    return transforms.Compose([transforms.ToTensor()] + ([CropAndFlip()] if train and augment else []))


class TensorLoader:
    """Shuffled mini-batches of uint8 images (B, C, 32, 32) with :func:`crop_and_flip`, drawn from
    a generator seeded by (seed, epoch): the same order and augmentation for every method of a
    study, and the same on every machine."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.images, self.labels, self.batch_size, self.seed, self.epoch = images, labels, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(1_000_003 * self.seed + self.epoch)
        order = torch.randperm(len(self.labels), generator=g)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield crop_and_flip(self.images[idx].float() / 255, g), self.labels[idx]


def _pickled(dataset: str, root: Path, train_tf, test_tf):
    folder, train_files, test_files, key = PICKLE_LAYOUT[dataset]
    base = root / folder
    if not all((base / f).is_file() for f in train_files + test_files):
        return None
    return (
        PickledCifar([base / f for f in train_files], key, train_tf),
        PickledCifar([base / f for f in test_files], key, test_tf),
    )


def read_image(path: str):
    """An RGB image; a file that cannot be decoded is named in the error."""
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            return Image.open(fh).convert("RGB")
    except Exception as err:  # PIL raises several types for truncated or foreign files
        raise DatasetError(f"{path}: cannot read this image ({type(err).__name__}: {err})") from None


def check_image_tree(root: Path) -> list[str]:
    """Checks an ImageFolder tree before any training: both splits hold the same non-empty class
    folders, and no image file is empty. Returns the class names; raises naming what is wrong."""
    classes = {}
    for split in ("train", "test"):
        folders = sorted(p for p in (root / split).iterdir() if p.is_dir())
        if not folders:
            raise DatasetError(f"{root / split}: no class folders (expected {root / split}/<class>/*.png|jpg)")
        classes[split] = [p.name for p in folders]
        for folder in folders:
            files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise DatasetError(f"{folder}: an empty class folder (no {'/'.join(IMAGE_SUFFIXES)} files)")
            empty = [p for p in files if p.stat().st_size == 0]
            if empty:
                raise DatasetError(f"{empty[0]}: an empty image file ({len(empty)} in {folder})")
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise DatasetError(
            f"{root}: train/ and test/ hold different class folders: only in train/ {only_train}, "
            f"only in test/ {only_test}"
        )
    return classes["train"]


def _image_folder(root: Path, train_tf, test_tf):
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        return None
    check_image_tree(root)
    return (
        datasets.ImageFolder(root / "train", train_tf, loader=read_image),
        datasets.ImageFolder(root / "test", test_tf, loader=read_image),
    )


def load(dataset: str, data_dir: str | Path, *, download: bool = False, augment: bool = True):
    """``(train_set, test_set, num_classes, layout)`` for ``dataset`` ("cifar10" | "cifar100")."""
    if dataset not in PICKLE_LAYOUT:
        raise ValueError(f"dataset must be one of {sorted(PICKLE_LAYOUT)}, got {dataset!r}")
    root = Path(data_dir).expanduser()
    train_tf, test_tf = transforms_for(True, augment), transforms_for(False)
    found = _pickled(dataset, root, train_tf, test_tf)
    if found:
        return (*found, NUM_CLASSES[dataset], "torchvision")
    found = _image_folder(root, train_tf, test_tf)
    if found:
        classes = len(found[0].classes)
        return (*found, classes, "imagefolder")
    if download:
        cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
        try:
            cls(root, train=True, download=True)
            cls(root, train=False, download=True)
        except Exception as err:  # any network or disk failure ends in the same advice
            raise DatasetNotFound(_advice(dataset, root, f"the download failed: {err}")) from None
        found = _pickled(dataset, root, train_tf, test_tf)
        if found:
            return (*found, NUM_CLASSES[dataset], "torchvision")
    raise DatasetNotFound(_advice(dataset, root, "pass --download to fetch it" if not download else ""))


def _holds_data(dataset: str, root: Path) -> bool:
    folder, train_files, test_files, _ = PICKLE_LAYOUT[dataset]
    pickled = all((root / folder / f).is_file() for f in train_files + test_files)
    return pickled or ((root / "train").is_dir() and (root / "test").is_dir())


def nearby(dataset: str, root: Path) -> list[Path]:
    """Folders one level above or below ``root`` that hold ``dataset`` in a supported layout."""
    candidates = [root.parent] if root.parent != root else []
    if root.is_dir():
        candidates += sorted(p for p in root.iterdir() if p.is_dir())
    return [p for p in candidates if _holds_data(dataset, p)]


def _advice(dataset: str, root: Path, extra: str) -> str:
    folder = PICKLE_LAYOUT[dataset][0]
    lines = [
        f"No {dataset} data found under {root}. Looked for:",
        f"  - torchvision's layout: {root / folder}/ with the official python batches",
        f"  - an ImageFolder tree: {root / 'train'}/<class>/*.png|jpg and {root / 'test'}/<class>/*",
        "Provide one of them (e.g. extract a CIFAR archive there) and point --data-dir at it.",
    ]
    hints = nearby(dataset, root)
    if hints:
        lines.insert(0, f"Did you mean --data-dir {hints[0]}? It holds {dataset} in a supported layout.")
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def first(dataset: Dataset, n: int | None, seed: int = 0, shuffle: bool = False) -> Dataset:
    """The first ``n`` items (or a seeded random ``n`` with ``shuffle``); all when ``n`` is None."""
    if n is None or n >= len(dataset):
        return dataset
    if shuffle:
        idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    else:
        idx = list(range(n))
    return Subset(dataset, idx)


def write_fake_cifar(root: Path, layout: str, per_class: int = 4, classes: int = 10, seed: int = 0) -> Path:
    """Tiny CIFAR-shaped data in ``layout`` ("torchvision" | "imagefolder"), for tests and smoke runs.

    Each class gets a distinct mean colour, so a model can learn something from a few images.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)

    def images(n, label):
        base = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], dtype=np.int16)
        noise = rng.integers(-40, 40, size=(n, 32, 32, 3))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    if layout == "imagefolder":
        for split, n in (("train", per_class), ("test", max(1, per_class // 2))):
            for c in range(classes):
                folder = root / split / f"class_{c:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                for i, img in enumerate(images(n, c)):
                    Image.fromarray(img).save(folder / f"{i:04d}.png")
        return root
    if layout == "torchvision":
        folder = root / PICKLE_LAYOUT["cifar10"][0]
        folder.mkdir(parents=True, exist_ok=True)
        names = PICKLE_LAYOUT["cifar10"][1] + PICKLE_LAYOUT["cifar10"][2]
        for name in names:
            n = per_class if name.startswith("data") else max(1, per_class // 2)
            labels = [c for c in range(classes) for _ in range(n)]
            data = np.concatenate([images(n, c) for c in range(classes)]).transpose(0, 3, 1, 2).reshape(len(labels), -1)
            with open(folder / name, "wb") as fh:
                pickle.dump({b"data": data, b"labels": labels}, fh)
        return root
    raise ValueError(f"layout must be 'torchvision' or 'imagefolder', got {layout!r}")
