"""Data: the sign dataset and its registry, class names, images, stickers (NumPy only, no torch.nn).

The sources live in subpackages that register their loaders when this package is imported:
:mod:`klugerhans.data.gtsrb` (real GTSRB), :mod:`klugerhans.data.synthetic` (rendered signs) and
:mod:`klugerhans.data.folder` (a user's images in ImageFolder layout).
"""

from klugerhans.data.classes import (
    CLASS_NAMES_DE,
    CLASS_NAMES_EN,
    NUM_CLASSES,
    check_class_id,
    class_name,
    class_names,
)
from klugerhans.data.dataset import (
    DatasetSpec,
    SignData,
    SignDataset,
    load_dataset,
    register_dataset,
    select_split,
    split_by_track,
)
from klugerhans.data.folder import LazyImages, export_image_folder, iter_batches, load_folder
from klugerhans.data.gtsrb import load_gtsrb
from klugerhans.data.images import decode_image, read_image, resize_square
from klugerhans.data.sticker import (
    StickerConfig,
    apply_sticker,
    apply_sticker_avoiding,
    manipulate_class,
    paint_sticker,
)
from klugerhans.data.synthetic import SyntheticConfig, load_synthetic, render_sign, render_signs

__all__ = [
    "CLASS_NAMES_DE",
    "CLASS_NAMES_EN",
    "NUM_CLASSES",
    "DatasetSpec",
    "LazyImages",
    "SignData",
    "SignDataset",
    "StickerConfig",
    "SyntheticConfig",
    "apply_sticker",
    "apply_sticker_avoiding",
    "check_class_id",
    "class_name",
    "class_names",
    "decode_image",
    "export_image_folder",
    "iter_batches",
    "load_dataset",
    "load_folder",
    "load_gtsrb",
    "load_synthetic",
    "manipulate_class",
    "paint_sticker",
    "read_image",
    "register_dataset",
    "render_sign",
    "render_signs",
    "resize_square",
    "select_split",
    "split_by_track",
]
