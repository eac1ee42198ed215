"""A user's own images in torchvision's ImageFolder layout: scanning, the loader, the streamed reader and
the exporter.

Importing this package registers the ``"folder"`` dataset (``--data folder --data-dir DIR``).
"""

from klugerhans.data.folder.export import class_folder, export_image_folder
from klugerhans.data.folder.loader import load_folder
from klugerhans.data.folder.scan import IMG_EXTENSIONS, FolderIndex, FolderSplit, scan_folder
from klugerhans.data.folder.stream import LazyImages, decode_file, decode_files, is_lazy, iter_batches, lazy_sign_data

__all__ = [
    "IMG_EXTENSIONS",
    "FolderIndex",
    "FolderSplit",
    "LazyImages",
    "class_folder",
    "decode_file",
    "decode_files",
    "export_image_folder",
    "is_lazy",
    "iter_batches",
    "lazy_sign_data",
    "load_folder",
    "scan_folder",
]
