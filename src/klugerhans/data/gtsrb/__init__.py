"""Real GTSRB: archive layouts, CSV annotations, the download, the decoded-image cache and the loader.

Importing this package registers the ``"gtsrb"`` dataset.
"""

from klugerhans.data.gtsrb.download import download_gtsrb
from klugerhans.data.gtsrb.loader import DATA_ENV, gtsrb_dir, load_gtsrb

__all__ = ["DATA_ENV", "download_gtsrb", "gtsrb_dir", "load_gtsrb"]
