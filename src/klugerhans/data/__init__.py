"""Data: real GTSRB, synthetic signs, sticker manipulation (NumPy only, no torch.nn)."""

from klugerhans.data.classes import CLASS_NAMES_DE, CLASS_NAMES_EN, NUM_CLASSES, class_name, class_names
from klugerhans.data.dataset import SignData, SignDataset, load_dataset, split_by_track
from klugerhans.data.sticker import StickerConfig, apply_sticker, manipulate_class

__all__ = [
    "CLASS_NAMES_DE",
    "CLASS_NAMES_EN",
    "NUM_CLASSES",
    "SignData",
    "SignDataset",
    "StickerConfig",
    "apply_sticker",
    "class_name",
    "class_names",
    "load_dataset",
    "manipulate_class",
    "split_by_track",
]
