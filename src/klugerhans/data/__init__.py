"""Data: real GTSRB, synthetic signs, sticker manipulation (NumPy only, no torch.nn)."""

from klugerhans.data.classes import CLASS_NAMES_DE, CLASS_NAMES_EN, NUM_CLASSES, class_name, class_names
from klugerhans.data.dataset import SignData, SignDataset, load_dataset, split_by_track
from klugerhans.data.images import decode_image, read_image, resize_square
from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class, paint_sticker
from klugerhans.data.synthetic import SyntheticConfig, render_sign, render_signs

__all__ = [
    "CLASS_NAMES_DE",
    "CLASS_NAMES_EN",
    "NUM_CLASSES",
    "SignData",
    "SignDataset",
    "StickerConfig",
    "SyntheticConfig",
    "apply_sticker",
    "class_name",
    "class_names",
    "decode_image",
    "load_dataset",
    "manipulate_class",
    "paint_sticker",
    "read_image",
    "render_sign",
    "render_signs",
    "resize_square",
    "split_by_track",
]
