"""Feed every bad input we know of to the real ``klugerhans`` CLI and check that each one fails cleanly.

Run ``python tools/bad_inputs.py``: it creates the inputs in a temporary folder (odd and broken images,
foreign and malicious checkpoints, damaged dataset copies, invalid option values, a disk that fills up while a
checkpoint is written), runs ``python -m klugerhans ...`` once per case and prints one line per case, then
``N inputs tried, E clean errors, H handled, T tracebacks``. It exits non-zero if any case printed a
traceback, exited with the wrong code, said more than one line of error, left a temporary file behind or ran
foreign code.

A *clean error* is a non-zero exit with one line ``klugerhans CMD: error: what is wrong; what to do``.
*Handled* inputs are valid but odd (a 1x1 image, 16-bit PNG, CMYK JPEG, ...): they must work, exit 0 and
print a prediction. ``--in-process`` calls :func:`klugerhans.cli.main` instead of starting processes (seconds
instead of minutes; what the test suite does for most cases).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

TOOLS = Path(__file__).resolve().parent
TEMP_PATTERNS = (".*.tmp", "*.part")
"""Names of half-written files (klugerhans.io.atomic_write temporaries, partial downloads)."""
_ENV_CLEARED = ("KLUGERHANS_GTSRB_DIR", "KLUGERHANS_CHECKPOINT", "KLUGERHANS_CACHE_DIR")


@dataclass(frozen=True)
class Case:
    """One input and what the CLI must do with it."""

    name: str
    """Short label printed in the report."""
    argv: tuple[str, ...]
    """Arguments after ``klugerhans``."""
    expect: Literal["error", "ok"] = "error"
    """"error": one clean error line and ``exit_code``; "ok": exit 0 (a valid but odd input)."""
    words: tuple[str, ...] = ()
    """Text the error message (or, for "ok", the output) must contain."""
    exit_code: int = 2
    """Expected exit status of an error (2: bad input, 1: operating-system error such as a full disk)."""
    disk_full: str | None = None
    """Make writing temporary files whose name contains this text fail with ENOSPC."""
    absent: tuple[str, ...] = ()
    """Paths that must not exist afterwards (a marker foreign code would create, a half-written checkpoint)."""
    present: tuple[str, ...] = ()
    """Paths that must exist afterwards (files an "ok" case writes)."""


@dataclass(frozen=True)
class Outcome:
    """What happened when one case ran."""

    case: Case
    code: int
    stdout: str
    stderr: str
    problems: tuple[str, ...] = field(default=())
    """Everything that was not as expected; empty when the case passed."""

    @property
    def traceback(self) -> bool:
        """Whether a Python traceback reached the user."""
        return "Traceback (most recent call last)" in self.stderr + self.stdout

    @property
    def verdict(self) -> str:
        """ "clean error", "handled", "TRACEBACK" or "WRONG"."""
        if self.traceback:
            return "TRACEBACK"
        if self.problems:
            return "WRONG"
        return "clean error" if self.case.expect == "error" else "handled"

    @property
    def message(self) -> str:
        """The last line the CLI printed on stderr (the error line), or the first line of output."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if self.case.expect == "ok" and not self.traceback:
            lines = [line for line in self.stdout.splitlines() if line.strip()]
            return lines[0] if lines else ""
        return lines[-1] if lines else ""


# --- fault injection -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def disk_full(pattern: str) -> Iterator[None]:
    """Make ``os.fsync`` fail with ENOSPC for temporary files (``tempfile.mkstemp``) whose name holds ``pattern``.

    That is how a full disk shows up in :func:`klugerhans.io.atomic_write`: the data is buffered until it is
    flushed and synced. Files are recognised by (descriptor, inode), so a reused descriptor is not hit.
    """
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync
    doomed: set[tuple[int, int]] = set()

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        if pattern in os.path.basename(name):
            doomed.add((fd, os.fstat(fd).st_ino))
        return fd, name

    def fsync(fd: int) -> None:
        key = (fd, os.fstat(fd).st_ino)
        if key in doomed:
            doomed.discard(key)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    tempfile.mkstemp, os.fsync = mkstemp, fsync  # type: ignore[assignment]
    try:
        yield
    finally:
        tempfile.mkstemp, os.fsync = real_mkstemp, real_fsync


def _run_module_with_full_disk() -> None:
    """Child-process entry: ``python -c ... PATTERN ARGS``: run ``python -m klugerhans ARGS`` with a full disk."""
    import runpy

    pattern = sys.argv.pop(1)
    with disk_full(pattern):
        runpy.run_module("klugerhans", run_name="__main__", alter_sys=True)


_CHILD = f"import sys; sys.path.insert(0, {str(TOOLS)!r}); import bad_inputs; bad_inputs._run_module_with_full_disk()"


# --- inputs ----------------------------------------------------------------------------------------------------


class _Evil:
    """Unpickling this creates a marker file: proof that foreign code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _image_bytes(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


_BROKEN_EXIF = b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 5) + b"\x12\x01\x03\x00"


def _make_images(folder: Path) -> dict[str, str]:
    """Valid, odd and broken image files; returns {label: path}."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8))
    png, ppm, jpg = (_image_bytes(rgb, fmt) for fmt in ("PNG", "PPM", "JPEG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": the stored pixels lie on their side
    wide16 = Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16))
    paths = {
        "ok": _write(folder / "sign.png", png),
        "empty": _write(folder / "empty.png", b""),
        "truncated_ppm": _write(folder / "cut.ppm", ppm[: len(ppm) // 3]),
        "truncated_png": _write(folder / "cut.png", png[: len(png) // 3]),
        "truncated_jpeg": _write(folder / "cut.jpg", jpg[: len(jpg) // 3]),
        "text": _write(folder / "notes.ppm", b"milk, eggs, bread\n"),
        "bad_header": _write(folder / "header.ppm", b"P6 40 thirty-six 255\n" + bytes(100)),
        # 108 megapixels of 1-bit PNG is a few kB on disk and 324 MB as RGB.
        "bomb": _write(folder / "bomb.png", _image_bytes(Image.new("1", (12_000, 9_000)), "PNG")),
        "one_pixel": _write(folder / "one.png", _image_bytes(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG")),
        "png16": _write(folder / "deep.png", _image_bytes(wide16, "PNG")),
        "gray": _write(folder / "gray.png", _image_bytes(rgb.convert("L"), "PNG")),
        "rgba": _write(folder / "rgba.png", _image_bytes(rgb.convert("RGBA"), "PNG")),
        "palette": _write(folder / "palette.png", _image_bytes(rgb.convert("P"), "PNG")),
        "cmyk": _write(folder / "cmyk.jpg", _image_bytes(rgb.convert("CMYK"), "JPEG")),
        "exif": _write(folder / "rotated.jpg", _image_bytes(rgb, "JPEG", exif=exif)),
        # An EXIF block whose directory promises 5 entries and holds half of one: Pillow warns, pixels are fine.
        "bad_exif": _write(folder / "bad_exif.jpg", _image_bytes(rgb, "JPEG", exif=_BROKEN_EXIF)),
    }
    if hasattr(os, "mkfifo"):  # reading a named pipe blocks until someone writes: it must be refused, not read
        os.mkfifo(folder / "pipe.ppm")
        paths["fifo"] = str(folder / "pipe.ppm")
    return paths


def _make_checkpoints(folder: Path, marker: Path) -> dict[str, str]:
    """A good tiny checkpoint and foreign, damaged or malicious ones; returns {label: path}."""
    import torch
    from safetensors.torch import save_file

    from klugerhans.models.checkpoint import CheckpointMeta, save_checkpoint
    from klugerhans.models.recipe import TrainConfig
    from klugerhans.models.vgg import ModelConfig, create_model

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tiny = ModelConfig(width=0.125)
    good = save_checkpoint(folder / "tiny.safetensors", create_model(tiny).eval(), CheckpointMeta(model=tiny))
    ten = ModelConfig(width=0.125, num_classes=10)
    ten_meta = CheckpointMeta(model=ten, class_names=tuple(f"thing {i}" for i in range(10)))
    paths = {
        "good": str(good),
        # Weights of a 10-class model under metadata that promises GTSRB's 43 classes.
        "classes": str(save_checkpoint(folder / "ten.safetensors", create_model(ten), CheckpointMeta(model=tiny))),
        # A consistent 10-class model: fine for predict, not for the 43-class figure.
        "ten_ok": str(save_checkpoint(folder / "ten_ok.safetensors", create_model(ten), ten_meta)),
        # VGG11 without BatchNorm weights, metadata saying VGG11-BN.
        "arch": str(
            save_checkpoint(
                folder / "plain.safetensors", create_model(ModelConfig(arch="vgg11", width=0.125)), CheckpointMeta(tiny)
            )
        ),
    }
    data = good.read_bytes()
    paths["truncated"] = _write(folder / "cut.safetensors", data[: len(data) - 1000])
    state = create_model(tiny).state_dict()
    save_file(state, folder / "bare.safetensors")  # no klugerhans metadata
    paths["no_meta"] = str(folder / "bare.safetensors")
    nan_model = create_model(tiny)
    with torch.no_grad():
        next(nan_model.parameters()).view(-1)[0] = float("nan")  # features.0.weight
    paths["nan"] = str(save_checkpoint(folder / "nan.safetensors", nan_model, CheckpointMeta(tiny)))
    paths["nan_norm"] = _with_metadata(
        good, folder / "nan_norm.safetensors", lambda m: m["normalization"].update(std=[math.nan, 0.25, 0.25])
    )
    with_recipe = save_checkpoint(
        folder / "recipe.safetensors", create_model(tiny), CheckpointMeta(tiny, recipe=TrainConfig())
    )
    paths["sticker"] = _with_metadata(
        with_recipe, folder / "sticker.safetensors", lambda m: m["recipe"]["sticker"].update(color="red")
    )
    # Pickles that run code when unpickled: a raw pickle and a torch.save archive.
    paths["pickle"] = _write(folder / "evil.pt", pickle.dumps(_Evil(marker)))
    torch.save({"state_dict": state, "hook": _Evil(marker)}, folder / "evil_zip.pth")
    paths["pickle_zip"] = str(folder / "evil_zip.pth")
    paths.update(_make_user_weights(folder, marker))
    return paths


def _make_user_weights(folder: Path, marker: Path) -> dict[str, str]:
    """State_dicts of the user's own torchvision model (``--arch``/``--weights``) and a pickled whole model."""
    import torch
    import torchvision

    model = torchvision.models.squeezenet1_1(num_classes=5)
    torch.save({"state_dict": model.state_dict()}, folder / "squeezenet1_1.pt")
    # A whole model saved with torch.save(model), carrying a payload that would run if it were unpickled.
    whole = torch.nn.Sequential(torch.nn.Linear(2, 2))
    whole.payload = _Evil(marker)  # type: ignore[assignment]
    torch.save(whole, folder / "whole_model.pt")
    return {"user": str(folder / "squeezenet1_1.pt"), "user_pickled": str(folder / "whole_model.pt")}


def _with_metadata(src: Path, dst: Path, edit: Callable[[dict[str, Any]], object]) -> str:
    """Copy checkpoint ``src`` with its klugerhans JSON metadata changed in place by ``edit``."""
    from klugerhans.models.checkpoint import METADATA_KEY

    data = src.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    edit(meta)
    header["__metadata__"][METADATA_KEY] = json.dumps(meta)  # NaN stays NaN: the loader must refuse it
    raw = json.dumps(header).encode()
    return _write(dst, struct.pack("<Q", len(raw)) + raw + data[8 + n :])


_GT_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"


def make_gtsrb_copy(root: Path, classes: Sequence[int] = (0, 2, 4), tracks: int = 2, frames: int = 2) -> Path:
    """A tiny copy of GTSRB in the official extracted layout (40x36 PPMs, sign box 28x26)."""
    train = root / "GTSRB" / "Final_Training" / "Images"
    test = root / "GTSRB" / "Final_Test" / "Images"
    geometry = "40;36;6;5;34;31"
    test_rows: list[tuple[str, int]] = []
    for c in classes:
        rows = []
        for t in range(tracks):
            for f in range(frames):
                pixels = np.zeros((36, 40, 3), np.uint8)
                pixels[5:31, 6:34] = (250, (20 + 5 * c) % 256, (20 + 30 * t + 10 * f) % 256)
                name = f"{t:05d}_{f:05d}.ppm"
                _write(train / f"{c:05d}" / name, _image_bytes(Image.fromarray(pixels), "PPM"))
                rows.append(f"{name};{geometry};{c}")
        (train / f"{c:05d}" / f"GT-{c:05d}.csv").write_text("\r\n".join([_GT_HEADER, *rows]) + "\r\n")
        name = f"{len(test_rows):05d}.ppm"
        _write(test / name, _image_bytes(Image.new("RGB", (40, 36), (250, (20 + 5 * c) % 256, 200)), "PPM"))
        test_rows.append((name, c))
    (test / "GT-final_test.test.csv").write_text(
        "\r\n".join([_GT_HEADER.rsplit(";", 1)[0], *(f"{n};{geometry}" for n, _ in test_rows)]) + "\r\n"
    )
    (root / "GT-final_test.csv").write_text(
        "\r\n".join([_GT_HEADER, *(f"{n};{geometry};{c}" for n, c in test_rows)]) + "\r\n"
    )
    return root


def _edit(root: Path, relative: str, change: Callable[[str], str]) -> None:
    path = root / relative
    path.write_text(change(path.read_text()))


def _make_datasets(folder: Path) -> dict[str, str]:
    """A good tiny GTSRB copy and damaged variants; returns {label: root}."""
    good = make_gtsrb_copy(folder / "good")
    roots = {"good": good}
    for label in ("no_classes", "malformed_csv", "duplicates", "truncated_image", "cache_full"):
        roots[label] = folder / label
        shutil.copytree(good, roots[label])
    train = "GTSRB/Final_Training/Images"
    shutil.rmtree(roots["no_classes"] / train)
    (roots["no_classes"] / train).mkdir()
    _edit(roots["malformed_csv"], f"{train}/00002/GT-00002.csv", lambda t: t.replace(";40;36;", ";forty;36;", 1))
    _edit(roots["duplicates"], f"{train}/00004/GT-00004.csv", lambda t: t + t.splitlines()[1] + "\r\n")
    image = roots["truncated_image"] / train / "00000" / "00001_00001.ppm"
    image.write_bytes(image.read_bytes()[:100])
    return {k: str(v) for k, v in roots.items()}


def _resume_config(data_dir: str) -> dict[str, object]:
    """config.json of a run as ``klugerhans train`` writes it for the arguments :func:`make_catalogue` uses."""
    from klugerhans.models.recipe import TrainConfig

    config = TrainConfig(data="gtsrb", data_dir=data_dir, epochs=1, batch_size=4, width=0.125)
    return {"config": config.to_dict()}


def make_catalogue(work: Path) -> list[Case]:
    """Create every input under ``work`` and return the cases that use them."""
    import torch

    marker = work / "FOREIGN_CODE_RAN"
    img = _make_images(work / "images")
    ckpt = _make_checkpoints(work / "checkpoints", marker)
    data = _make_datasets(work / "datasets")
    runs = work / "runs"
    (runs / "is_a_file").parent.mkdir(parents=True, exist_ok=True)
    (runs / "is_a_file").write_text("a file where the run folder should be\n")
    evil_run = runs / "evil_resume"
    evil_run.mkdir()
    (evil_run / "config.json").write_text(json.dumps(_resume_config(data["good"])))
    torch.save({"epoch": 1, "hook": _Evil(marker)}, evil_run / "train_state.pt")
    good = ckpt["good"]
    cpu = ("--device", "cpu")
    train: tuple[str, ...] = ("train", "--data", "gtsrb", "--data-dir", data["good"], "--epochs", "1")
    train += ("--batch-size", "4", "--width", "0.125", "--no-progress", *cpu)

    def predict(path: str, checkpoint: str = good) -> tuple[str, ...]:
        return ("predict", path, "--checkpoint", checkpoint, *cpu)

    def own(arch: str, weights: str) -> tuple[str, ...]:
        return ("predict", img["ok"], "--arch", arch, "--weights", weights, *cpu)

    def bad_image(name: str, key: str, *words: str) -> Case:
        return Case(name, predict(img[key]), words=(img[key], *words))

    def odd_image(name: str, key: str) -> Case:
        return Case(name, predict(img[key]), "ok", words=(img[key], "top-3"))

    def bad_checkpoint(name: str, key: str, *words: str, absent: tuple[str, ...] = ()) -> Case:
        return Case(name, predict(img["ok"], ckpt[key]), words=words, absent=absent)

    def bad_data(name: str, key: str, *words: str) -> Case:
        return Case(name, ("data", "--data", "gtsrb", "--data-dir", data[key]), words=words)

    return [
        # Images: missing, wrong kind, broken.
        Case("nonexistent image", predict(str(work / "nope.ppm")), words=("no such file", "check the path")),
        Case(
            "directory for an image",
            ("figure", "--checkpoint", good, *cpu, "--images", *[str(work)] * 4, "--out", str(work / "fig.png")),
            words=("is a directory",),
        ),
        bad_image("empty image file", "empty", "empty"),
        *([bad_image("named pipe instead of an image", "fifo", "not a regular file")] if "fifo" in img else []),
        bad_image("truncated PPM", "truncated_ppm", "truncated"),
        bad_image("truncated PNG", "truncated_png", "truncated"),
        bad_image("truncated JPEG", "truncated_jpeg", "truncated"),
        bad_image("text file named .ppm", "text", "not an image"),
        bad_image("PPM with a damaged header", "bad_header", "damaged"),
        bad_image("decompression bomb (108 MP)", "bomb", "too large", "resize it"),
        # Valid but odd images must work.
        odd_image("1x1 image", "one_pixel"),
        odd_image("16-bit PNG", "png16"),
        odd_image("grayscale PNG", "gray"),
        odd_image("RGBA PNG", "rgba"),
        odd_image("palette PNG", "palette"),
        odd_image("CMYK JPEG", "cmyk"),
        odd_image("JPEG with corrupt EXIF", "bad_exif"),
        Case(
            "EXIF-rotated JPEG (explain)",
            ("explain", img["exif"], "--checkpoint", good, *cpu, "--out", str(work / "explained")),
            "ok",
            words=(img["exif"], "heatmap"),
            present=(str(work / "explained" / "rotated_heatmap.png"),),
        ),
        # Checkpoints: foreign, damaged, malicious.
        bad_checkpoint("checkpoint of another class count", "classes", "classifier.3.weight", "shape"),
        bad_checkpoint("checkpoint of another architecture", "arch", "do not match klugerhans:vgg11_bn"),
        bad_checkpoint("truncated checkpoint", "truncated", "truncated", "download it again"),
        bad_checkpoint("checkpoint without metadata", "no_meta", "without klugerhans metadata"),
        bad_checkpoint("checkpoint with NaN weights", "nan", "NaN", "train again"),
        bad_checkpoint("checkpoint with NaN normalisation", "nan_norm", "finite", "damaged"),
        bad_checkpoint("pickle that runs code (.pt)", "pickle", "not a safetensors file", absent=(str(marker),)),
        bad_checkpoint("torch.save archive with code", "pickle_zip", "not a safetensors file", absent=(str(marker),)),
        # The user's own model: --arch + --weights.
        Case(
            "own weights (--arch squeezenet1_1)",
            (*own("squeezenet1_1", ckpt["user"]), "--image-size", "64"),
            "ok",
            words=(img["ok"], "top-3"),
        ),
        Case(
            "pickled whole model as --weights",
            own("resnet18", ckpt["user_pickled"]),
            words=("never unpickles", "torch.save(model.state_dict(), PATH)"),
            absent=(str(marker),),
        ),
        Case(
            "weights of another architecture (--arch)",
            own("squeezenet1_0", ckpt["user"]),
            words=("do not fit squeezenet1_0", "features.0.weight", "shape"),
        ),
        Case("unknown --arch", own("resnet181", ckpt["user"]), words=("unknown architecture", "did you mean resnet18")),
        Case(
            "--image-size too small for the architecture",
            (*own("squeezenet1_1", ckpt["user"]), "--image-size", "8"),
            words=("too small", "at least 32"),
        ),
        Case("--weights without --arch", ("predict", img["ok"], "--weights", ckpt["user"], *cpu), words=("--arch",)),
        Case(
            "10-class model explains with its own names",
            ("explain", img["ok"], "--checkpoint", ckpt["ten_ok"], *cpu, "--lang", "de", "--out", str(work / "ten")),
            "ok",
            words=("thing ",),
        ),
        Case(
            "10-class model for the GTSRB figure",
            (
                "figure",
                "--checkpoint",
                ckpt["ten_ok"],
                *cpu,
                "--data",
                "gtsrb",
                "--data-dir",
                data["good"],
                "--out",
                str(work / "fig10.png"),
            ),
            words=("needs a GTSRB model", "this one has 10"),
        ),
        Case(
            "invalid sticker in checkpoint metadata",
            ("evaluate", "--checkpoint", ckpt["sticker"], *cpu, "--data", "gtsrb", "--data-dir", data["good"]),
            words=("invalid klugerhans metadata", "sticker colour"),
        ),
        Case(
            "checkpoint folder without checkpoints",
            predict(img["ok"], str(work / "images")),
            words=("has no best.safetensors",),
        ),
        Case(
            "malicious train_state.pt on --resume",
            (*train, "--out", str(evil_run), "--resume"),
            words=("cannot read the training state",),
            absent=(str(marker),),
        ),
        # Datasets: empty, malformed, duplicated, half-broken; a copy with only some classes works.
        bad_data("dataset without class folders", "no_classes", "no class folders"),
        bad_data("dataset with a malformed CSV", "malformed_csv", "Width", "fix the CSV"),
        bad_data("dataset with duplicate files", "duplicates", "twice", "duplicate"),
        bad_data("dataset with a truncated image", "truncated_image", "00001_00001.ppm", "truncated"),
        Case(
            "folder without GTSRB data",
            ("data", "--data", "gtsrb", "--data-dir", str(work / "images")),
            words=("no GTSRB data", "--download"),
        ),
        Case(
            "dataset with 3 of 43 classes",
            ("data", "--data", "gtsrb", "--data-dir", data["good"]),
            "ok",
            words=("classes: 3",),
        ),
        # Option values.
        Case(
            "negative epochs", (*train, "--out", str(runs / "neg"), "--epochs", "-1"), words=("--epochs", "at least 1")
        ),
        Case(
            "sticker size outside (0, 1)",
            (*train, "--out", str(runs / "s"), "--sticker-size", "1.5"),
            words=("--sticker-size", "(0, 1)"),
        ),
        Case(
            "unknown composite",
            ("explain", img["ok"], "--checkpoint", good, "--composite", "magic", *cpu),
            words=("unknown composite 'magic'", "choose one of"),
        ),
        Case(
            "unknown class id (--sticker-class 43)",
            (*train, "--out", str(runs / "c"), "--sticker-class", "43"),
            words=("unknown class id 43",),
        ),
        Case(
            "unknown class id (--target 99)",
            ("explain", img["ok"], "--checkpoint", good, "--target", "99", *cpu),
            words=("unknown class id 99",),
        ),
        Case("run folder that is a file", (*train, "--out", str(runs / "is_a_file")), words=("is a file",)),
        Case(
            "--resume with nothing to resume",
            (*train, "--out", str(runs / "fresh"), "--resume"),
            words=("nothing to resume",),
        ),
        Case(
            "--json pointing at a folder",
            (
                "evaluate",
                "--checkpoint",
                good,
                *cpu,
                "--data",
                "gtsrb",
                "--data-dir",
                data["good"],
                "--json",
                str(runs),
            ),
            exit_code=1,
            words=(str(runs), "give a file name"),
        ),
        Case(
            "--out below a file",
            ("explain", img["ok"], "--checkpoint", good, *cpu, "--out", str(runs / "is_a_file" / "x")),
            exit_code=1,
            words=("a file stands where a folder",),
        ),
        # A disk that fills up: the error names the file, nothing half-written stays.
        Case(
            "disk full while writing a checkpoint",
            (*train, "--out", str(runs / "full")),
            exit_code=1,
            words=("No space left on device", "last.safetensors", "free some disk space", "--resume"),
            disk_full=".safetensors.",
            absent=(str(runs / "full" / "last.safetensors"),),
        ),
        Case(
            "disk full while writing the dataset cache",
            ("data", "--data", "gtsrb", "--data-dir", data["cache_full"]),
            words=("cannot write the dataset cache", "No space left on device"),
            disk_full=".npy.",
        ),
        Case(
            "disk full while writing a heatmap",
            ("explain", img["ok"], "--checkpoint", good, *cpu, "--out", str(work / "full_heatmaps")),
            exit_code=1,
            words=("No space left on device", "sign_heatmap.png", "free some disk space"),
            disk_full="_heatmap.png.",
            absent=(str(work / "full_heatmaps" / "sign_heatmap.png"),),
        ),
    ]


# --- running and judging -------------------------------------------------------------------------------------------


def _temp_files(work: Path) -> set[Path]:
    return {p for pattern in TEMP_PATTERNS for p in work.rglob(pattern)}


def judge(case: Case, code: int, stdout: str, stderr: str, leftovers: set[Path]) -> Outcome:
    """Compare what a run did with what ``case`` expects."""
    problems: list[str] = []
    error_lines = [line for line in stderr.splitlines() if "error:" in line]
    if case.expect == "error":
        if code != case.exit_code:
            problems.append(f"exit code {code}, expected {case.exit_code}")
        if len(error_lines) != 1:
            problems.append(f"{len(error_lines)} error lines, expected 1")
        text = error_lines[-1] if error_lines else stderr
    else:
        if code != 0:
            problems.append(f"exit code {code}, expected 0")
        if error_lines:
            problems.append("printed an error")
        text = stdout
    problems += [f"message lacks {w!r}" for w in case.words if w not in text]
    if "Warning:" in stderr:
        problems.append("printed a Python warning")
    problems += [f"left {p}" for p in sorted(leftovers)]
    problems += [f"{p} exists" for p in case.absent if Path(p).exists()]
    problems += [f"{p} missing" for p in case.present if not Path(p).exists()]
    return Outcome(case, code, stdout, stderr, tuple(problems))


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_CLEARED}
    # One thread per process: the catalogue is many tiny runs, and the machine may be busy.
    env |= {"KLUGERHANS_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return env


def run_in_subprocess(case: Case, work: Path, timeout: float = 300.0) -> Outcome:
    """Run ``python -m klugerhans ARGV`` (with the fault injected, if any) in a fresh process."""
    before = _temp_files(work)
    if case.disk_full:
        command = [sys.executable, "-c", _CHILD, case.disk_full, *case.argv]
    else:
        command = [sys.executable, "-m", "klugerhans", *case.argv]
    try:
        res = subprocess.run(
            command, capture_output=True, text=True, cwd=work, env=_environment(work), timeout=timeout, check=False
        )
        code, out, err = res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, str(exc.stdout or ""), f"hung: no exit after {timeout:.0f} s"
    return judge(case, code, out, err, _temp_files(work) - before)


def run_in_process(case: Case, work: Path) -> Outcome:
    """Call :func:`klugerhans.cli.main` with the output captured; an escaping exception counts as a traceback."""
    from klugerhans.cli import main

    before = _temp_files(work)
    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in _ENV_CLEARED}
    for k in _ENV_CLEARED:
        os.environ.pop(k, None)
    os.environ["KLUGERHANS_CACHE_DIR"] = str(work / "cache")
    try:
        fault = disk_full(case.disk_full) if case.disk_full else contextlib.nullcontext()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), fault:
            try:
                code = main(list(case.argv))
            except SystemExit as exc:  # argparse refuses a value before main's handlers run
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # exactly what must never happen: record it as the user would see it
                traceback.print_exc()
                code = 1
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return judge(case, code, out.getvalue(), err.getvalue(), _temp_files(work) - before)


def run_catalogue(
    work: Path,
    in_process: bool | Callable[[Case], bool] = False,
    only: Sequence[str] = (),
    report: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Create the inputs under ``work``, run every case (or those whose name contains one of ``only``).

    Args:
        work: an empty scratch folder.
        in_process: run cases by calling ``main()`` (True), in subprocesses (False), or decide per case.
        only: run only cases whose name contains one of these strings.
        report: called with each outcome as it arrives.
    """
    cases = [c for c in make_catalogue(work) if not only or any(o in c.name for o in only)]
    outcomes = []
    for case in cases:
        inside = in_process(case) if callable(in_process) else in_process
        outcome = run_in_process(case, work) if inside else run_in_subprocess(case, work)
        outcomes.append(outcome)
        if report is not None:
            report(outcome)
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> str:
    """``N inputs tried, E clean errors, H handled, T tracebacks`` (and ``, W wrong`` if any)."""
    count = {v: sum(o.verdict == v for o in outcomes) for v in ("clean error", "handled", "TRACEBACK", "WRONG")}
    line = (
        f"{len(outcomes)} inputs tried, {count['clean error']} clean errors, {count['handled']} handled, "
        f"{count['TRACEBACK']} tracebacks"
    )
    return line + (f", {count['WRONG']} wrong" if count["WRONG"] else "")


def format_outcome(outcome: Outcome) -> str:
    """One report line: verdict, case name, exit code and the message (or what went wrong)."""
    detail = "; ".join(outcome.problems) if outcome.problems else outcome.message
    return f"{outcome.verdict:<11} {outcome.case.name:<44} exit {outcome.code:>3}  {detail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="call klugerhans.cli.main instead of subprocesses")
    parser.add_argument("--only", nargs="*", default=(), help="run only cases whose name contains one of these")
    parser.add_argument("--keep", default=None, help="create the inputs in this (empty) folder and keep them")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="klugerhans-bad-inputs-")))
        outcomes = run_catalogue(
            work, args.in_process, args.only, report=lambda o: print(format_outcome(o), flush=True)
        )
    for outcome in outcomes:
        if outcome.verdict in ("TRACEBACK", "WRONG"):
            print(f"\n--- {outcome.case.name}: klugerhans {' '.join(outcome.case.argv)}\n{outcome.stderr[-3000:]}")
    print(f"({time.perf_counter() - start:.0f} s)")
    print(summary(outcomes))
    return 0 if all(o.verdict in ("clean error", "handled") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
