"""A user's own images in torchvision's ImageFolder layout: scanning, the loader and the streamed reader.

Importing this package registers the ``"folder"`` dataset (``--data folder --data-dir DIR``).
"""

from klugerhans.data.folder.loader import load_folder
from klugerhans.data.folder.scan import IMG_EXTENSIONS, FolderIndex, FolderSplit, scan_folder
from klugerhans.data.folder.stream import LazyImages, decode_file, decode_files, is_lazy, iter_batches, lazy_sign_data

__all__ = [
    "IMG_EXTENSIONS",
    "FolderIndex",
    "FolderSplit",
    "LazyImages",
    "decode_file",
    "decode_files",
    "is_lazy",
    "iter_batches",
    "lazy_sign_data",
    "load_folder",
    "scan_folder",
]
