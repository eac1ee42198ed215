"""audit.json keys and the self-contained HTML report, through the checkpoint entry point and in memory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHORTCUT_CLASS, colour_squares, square_model, wrap

from klugerhans.audit.config import AuditConfig
from klugerhans.audit.report import run_audit, write_audit
from klugerhans.audit.run import audit_classifier
from klugerhans.data.dataset import DATASETS, DatasetSpec, SignDataset
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError
from klugerhans.models.checkpoint import CheckpointMeta, save_checkpoint
from klugerhans.models.recipe import TrainConfig
from klugerhans.models.vgg import ModelConfig, create_model

KEYS = {
    "config",
    "model",
    "data",
    "accuracy",
    "threshold",
    "threshold_rationale",
    "threshold_source",
    "suspicion_ranking",
    "flagged",
    "per_class",
    "localisation",
    "faithfulness",
    "sanity",
    "methods",
    "timings",
}


def _check_html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # self-contained: no external resources or links of any kind
    assert not re.search(r"(src|href)\s*=\s*['\"](?!data:)", text)
    assert "http://" not in text and "https://" not in text
    return text


def test_report_of_a_planted_shortcut(tmp_path: Path, shortcut_classifier, squares_with_patch) -> None:
    config = AuditConfig(
        checkpoint="hand-built",
        out=str(tmp_path),
        recipients=32,
        methods=("lrp:epsilon_plus_flat", "gradient", "random"),
        n_localisation=4,
        n_faithfulness=6,
        flip_steps=4,
        n_sanity=2,
        tsne_classes=1,
        progress=False,
        probes=("window", "place"),  # every toy class is a pure colour: the colour probe rightly turns each one
    )
    result = audit_classifier(shortcut_classifier, squares_with_patch, config)
    summary = write_audit(result, tmp_path)
    on_disk = json.loads((tmp_path / "audit.json").read_text())
    assert on_disk == summary
    assert set(summary) >= KEYS
    assert summary["suspicion_ranking"][0] == SHORTCUT_CLASS and summary["flagged"] == [SHORTCUT_CLASS]
    entry = summary["per_class"][str(SHORTCUT_CLASS)]
    assert entry["flagged"] and entry["rank"] == 1 and entry["transplant"]["hijack_rate"] > 0.9
    assert set(summary["localisation"]["methods"]) == set(config.methods)
    assert summary["localisation"]["methods"]["lrp:epsilon_plus_flat"]["mass_accuracy"] > 0.5
    assert set(summary["faithfulness"]["methods"]) == set(config.methods)
    finding = result.findings()[SHORTCUT_CLASS]
    assert finding.flagged and finding.rank == 1 and finding.transplant is result.transplant[SHORTCUT_CLASS]
    assert result.comparison is not None and result.comparison.localisation.n == summary["localisation"]["n"]
    with pytest.warns(DeprecationWarning, match="comparison.faithfulness"):
        assert result.faithfulness == summary["faithfulness"]  # the dict scripts read before it was typed
    html = _check_html(tmp_path / "report.html")
    assert html.count("data:image/png;base64,") >= 4
    assert (tmp_path / "report.md").exists()


def _tiny_dataset(*, data_dir=None, size=32, download=False, max_images=None, seed=0) -> SignDataset:
    data = colour_squares(per_class=6, size=size, seed=seed)
    return SignDataset(train=data, test=data, info={"name": "squares"})


def test_run_audit_from_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DATASETS, "squares", DatasetSpec(_tiny_dataset))
    torch.manual_seed(0)
    cfg = ModelConfig(width=0.125, num_classes=5)
    meta = CheckpointMeta(model=cfg, class_names=tuple(str(c) for c in range(5)))
    path = save_checkpoint(tmp_path / "model.safetensors", create_model(cfg), meta)
    config = AuditConfig(
        checkpoint=str(path), data="squares", out=str(tmp_path / "audit"), methods=(), tsne_classes=0, progress=False
    )
    summary = run_audit(config)
    assert set(summary) >= KEYS
    assert summary["data"]["n_images"] == 30 and not summary["data"]["artefacts_reproduced"]
    assert isinstance(summary["suspicion_ranking"], list) and isinstance(summary["flagged"], list)
    assert np.isfinite(summary["timings"]["lrp"])
    _check_html(tmp_path / "audit" / "report.html")


def test_bad_config_is_a_one_line_error() -> None:
    with pytest.raises(KlugerhansError, match="threshold"):
        AuditConfig(checkpoint="x", threshold=1.5)
    with pytest.raises(KlugerhansError, match="unknown attribution method"):
        AuditConfig(checkpoint="x", methods=("nope",))
    with pytest.raises(KlugerhansError, match="composite"):
        AuditConfig(checkpoint="x", composite="nope")


def test_virelay_export_layout(tmp_path: Path, shortcut_classifier, squares_with_patch) -> None:
    h5py = pytest.importorskip("h5py")
    from klugerhans.audit.virelay import export_virelay

    config = AuditConfig(checkpoint="hand-built", recipients=16, methods=(), tsne_classes=1, progress=False)
    result = audit_classifier(shortcut_classifier, squares_with_patch, config)
    project = export_virelay(result, tmp_path / "virelay")
    text = project.read_text()
    names = ("dataset.input.h5", "epsilon_plus_flat.attribution.h5", "spray.analysis.h5", "spray-tsne.analysis.h5")
    for name in (*names, "label-map.json"):
        assert name in text and (tmp_path / "virelay" / name).exists()
    label_map = json.loads((tmp_path / "virelay" / "label-map.json").read_text())
    assert [(e["index"], e["word_net_id"]) for e in label_map] == [(c, f"{c:05d}") for c in range(5)]
    with h5py.File(tmp_path / "virelay" / "epsilon_plus_flat.attribution.h5") as f:
        n = len(result.heatmaps.index)
        assert f["attribution"].shape == (n, 3, 32, 32) and f["prediction"].shape == (n, 5)
        np.testing.assert_array_equal(f["index"][:], result.heatmaps.index)
        np.testing.assert_array_equal(f["label"][:], squares_with_patch.labels[result.heatmaps.index])
    with h5py.File(tmp_path / "virelay" / "spray.analysis.h5") as f:
        assert sorted(f) == [f"{c:05d}" for c in range(5)]
        group = f[f"{SHORTCUT_CLASS:05d}"]
        assert group["cluster/eigengap"].shape == (len(group["index"]),)
        assert list(group["embedding"]) == ["spectral"] and "eigenvalue" in group["embedding/spectral"].attrs
        assert group["prototype/eigengap"].shape[1:] == (32, 32)
    with h5py.File(tmp_path / "virelay" / "spray-tsne.analysis.h5") as f:
        assert sorted(f) == [f"{c:05d}" for c in sorted(result.tsne)]
        assert list(f[f"{SHORTCUT_CLASS:05d}/embedding"]) == ["spectral", "tsne"]


def test_val_split_is_the_training_validation_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from klugerhans.audit.run import load_audit_data
    from klugerhans.data.dataset import split_by_track
    from klugerhans.models.checkpoint import classifier_from_model

    monkeypatch.setitem(DATASETS, "squares", DatasetSpec(_tiny_dataset))
    cfg = ModelConfig(width=0.125, num_classes=5)
    meta = CheckpointMeta(
        model=cfg,
        class_names=tuple(str(c) for c in range(5)),
        recipe=TrainConfig(data="squares", seed=3, val_fraction=0.2, sticker=StickerConfig(fraction=0.0)),
    )
    clf = classifier_from_model(create_model(cfg), meta)
    data, masks, info = load_audit_data(AuditConfig(checkpoint="x", data="squares", split="val"), clf)
    _, want = split_by_track(_tiny_dataset(seed=3).train, 0.2, seed=3)  # loaded with the training seed
    assert np.array_equal(data.images, want.images) and info["split"] == "val" and masks is None
    with pytest.raises(KlugerhansError, match="split"):
        AuditConfig(checkpoint="x", split="holdout")


class _ChannelMean(torch.nn.Module):
    """Average pooling written as a mean over the flattened pixels: an operation the LRP engine has no rule for."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(2)


def test_gradient_fallback_is_reported(tmp_path: Path, squares_with_patch) -> None:

    conv, relu, _, _, linear = square_model(shortcut=True)
    clf = wrap(torch.nn.Sequential(conv, relu, _ChannelMean(), linear).eval())
    config = AuditConfig(
        checkpoint="hand-built", recipients=16, methods=("lrp:epsilon_plus_flat",), n_localisation=2,
        n_faithfulness=2, flip_steps=2, n_sanity=0, tsne_classes=0, progress=False,
    )  # fmt: skip
    with pytest.raises(KlugerhansError, match=r"^no LRP rule for call_method mean at '2\.mean'.*--fallback gradient"):
        audit_classifier(clf, squares_with_patch, config)
    assert (
        "lrp_rule_share"
        not in audit_classifier(wrap(square_model(shortcut=True)), squares_with_patch, config).info["discovery"]
    )

    config = AuditConfig(**{**config.__dict__, "fallback": "gradient"})
    summary = write_audit(audit_classifier(clf, squares_with_patch, config), tmp_path)
    on_disk = json.loads((tmp_path / "audit.json").read_text())
    assert on_disk["config"]["fallback"] == "gradient"
    discovery = on_disk["discovery"]
    assert discovery == summary["discovery"]
    assert 0 < discovery["lrp_rule_share"] < 1
    assert discovery["fallback_ops"] == [{"op": "mean", "module": "2.mean"}]
    assert discovery["lrp_rule_share"] == pytest.approx(1 - 1 / discovery["lrp_ops"])
    html = _check_html(tmp_path / "report.html")
    n = discovery["lrp_ops"]
    assert f"LRP rules covered {n - 1} of {n} operations; gradient fallback for: mean (2.mean)" in html
    with pytest.raises(KlugerhansError, match="fallback must be"):
        AuditConfig(checkpoint="x", fallback="zero")  # type: ignore[arg-type]
