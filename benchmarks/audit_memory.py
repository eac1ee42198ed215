"""Peak memory of ``klugerhans audit`` on a user's image folder: does it grow with the number of images?

Builds an ImageFolder of ``--images`` photos (``--photo`` px JPEGs of smooth random texture) for each size asked
for, and a torchvision ``--arch`` with random weights whose classifier is rescaled so that its predictions spread
evenly over ``--classes`` classes; every image is filed under the class the model predicts, so all of them are
correctly classified and every stage has work (LRP on ``--max-per-class`` images per class, the transplant test on
every class). Then it runs, in a fresh process per size::

    klugerhans audit --arch ARCH --weights W --data folder --data-dir D --split train --image-size SIZE --methods ''

and reads that process's peak resident set size from ``os.wait4``. Attribution-method comparison is off (its cost
is a fixed number of images, independent of the folder's size). Usage::

    python benchmarks/audit_memory.py [--arch resnet50] [--size 224] [--images 500 5000] [--batch-size N]

The last two lines are ``peak_rss_growth_ratio: X`` (largest folder / smallest) and
``audit_peak_rss_mb_<arch>_<size>_<n>: X`` for the largest folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from klugerhans.data.images import resize_center_crop
from klugerhans.models.preprocess import IMAGENET, Normalization, to_tensor


def _photo(rng: np.random.Generator, side: int) -> Image.Image:
    """Smooth colour texture plus grain: JPEG-compressible like a photo, not like white noise."""
    coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    grain = rng.integers(-12, 13, size=(side, side, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int64) + grain, 0, 255).astype(np.uint8))


def _make_folder(root: Path, model: torch.nn.Module, n: int, args: argparse.Namespace, seed: int) -> None:
    """Write ``n`` photos into ``root/<predicted class>/`` (a bare folder: one split, audited as ``train``)."""
    rng = np.random.default_rng(seed)
    norm = Normalization(*IMAGENET)
    for c in range(args.classes):
        (root / f"class{c:03d}").mkdir(parents=True, exist_ok=True)
    for start in range(0, n, 64):
        photos = [_photo(rng, args.photo) for _ in range(min(64, n - start))]
        x = to_tensor(np.stack([resize_center_crop(p, args.size) for p in photos]), norm)
        with torch.no_grad():
            preds = model(x).argmax(1).tolist()
        for i, (photo, c) in enumerate(zip(photos, preds, strict=True)):
            photo.save(root / f"class{c:03d}" / f"{start + i:06d}.jpg", quality=90)


def _balanced_model(args: argparse.Namespace) -> torch.nn.Module:
    """A random ``args.arch`` whose logits are standardised per class on a calibration batch (even predictions)."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.arch, num_classes=args.classes).eval()
    head = model.fc if hasattr(model, "fc") else model.classifier[-1]
    rng = np.random.default_rng(123)
    calib = np.stack([resize_center_crop(_photo(rng, args.photo), args.size) for _ in range(128)])
    with torch.no_grad():
        logits = model(to_tensor(calib, Normalization(*IMAGENET)))
        mean, std = logits.mean(0), logits.std(0).clamp_min(1e-6)
        head.weight.div_(std[:, None])
        head.bias.sub_(mean).div_(std)
    return model


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd``; its peak RSS in MB (from ``os.wait4``), wall seconds and exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50", help="torchvision classification model (default resnet50)")
    parser.add_argument("--size", type=int, default=224, help="model input side (default 224)")
    parser.add_argument("--photo", type=int, default=256, help="side of the JPEG files (default 256)")
    parser.add_argument("--images", type=int, nargs="+", default=[500, 5000], help="folder sizes (default 500 5000)")
    parser.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    parser.add_argument("--batch-size", type=int, default=None, help="audit --batch-size (default: the audit's own)")
    parser.add_argument("--max-per-class", type=int, default=100, help="audit --max-per-class (default 100)")
    parser.add_argument("--keep", type=Path, default=None, help="build the folders here and keep them")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    work = Path(tempfile.mkdtemp(prefix="klugerhans-audit-memory-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        model = _balanced_model(args)
        weights = work / f"{args.arch}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        peaks: dict[int, float] = {}
        for n in sorted(args.images):
            folder = work / f"folder-{n}"
            if not folder.is_dir():
                t = time.perf_counter()
                _make_folder(folder, model, n, args, seed=n)
                print(f"{n} images written and labelled in {time.perf_counter() - t:.0f} s", flush=True)
            cmd = [
                sys.executable, "-m", "klugerhans", "audit", "--arch", args.arch, "--weights", str(weights),
                "--data", "folder", "--data-dir", str(folder), "--split", "train", "--image-size", str(args.size),
                "--methods", "", "--max-per-class", str(args.max_per_class),
                "--device", "cpu", "--no-progress", "--out", str(work / f"audit-{n}"),
            ]  # fmt: skip
            if args.batch_size is not None:
                cmd += ["--batch-size", str(args.batch_size)]
            peak, wall, code = _peak_rss_mb(cmd)
            if code:
                raise SystemExit(f"the audit of {n} images failed (exit {code})")
            peaks[n] = peak
            decoded = n * args.size * args.size * 3 / 2**20
            print(f"images {n}: peak RSS {peak:.0f} MB, {wall:.0f} s wall (decoded, the images take {decoded:.0f} MB)")
        small, large = min(peaks), max(peaks)
        print(f"peak_rss_growth_ratio: {peaks[large] / peaks[small]:.3f}")
        print(f"audit_peak_rss_mb_{args.arch}_{args.size}_{large}: {peaks[large]:.0f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
