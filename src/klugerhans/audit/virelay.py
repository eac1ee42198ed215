"""Export the discovery stage as a ViRelAy project (Anders et al. 2021, "Software for dataset-wide XAI").

ViRelAy is a web viewer for SpRAy results. Its project is a YAML file next to a label map and three kinds of HDF5
files, laid out as its database specification describes:

* ``dataset.input.h5``: ``data`` (N, 3, S, S) float32 images in [0, 1] and ``label`` (N,) class ids;
* ``<composite>.attribution.h5``: ``index`` (M,) rows of the explained images, ``attribution`` (M, 3, S, S) LRP
  relevance (recomputed at full resolution batch by batch, written slice by slice so memory stays bounded),
  ``label`` (M, C) output relevance and ``prediction`` (M, C) logits;
* ``spray.analysis.h5``: one group per class with ``index``, ``embedding/spectral`` (root, eigenvalue),
  ``embedding/tsne`` where the audit computed one, and ``clustering/spectral`` (root, #clusters and the average
  prototype, upsampled to S x S).

Needs ``h5py`` (``pip install h5py``). Written by following the specification; not checked against a running
ViRelAy here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import get_composite
from klugerhans.explain.lrp import LRP
from klugerhans.io import atomic_write, atomic_write_text
from klugerhans.models.preprocess import to_tensor

if TYPE_CHECKING:
    from klugerhans.audit.run import AuditResult

__all__ = ["export_virelay"]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise KlugerhansError("the ViRelAy export needs h5py: pip install h5py, or run without --virelay") from None
    return h5py


def export_virelay(result: AuditResult, folder: str | os.PathLike[str], batch_size: int = 64) -> Path:
    """Write a ViRelAy project for ``result`` into ``folder``; return the path of ``project.yaml``."""
    h5py = _h5py()
    clf = result.classifier
    if clf is None:
        raise KlugerhansError("the ViRelAy export needs the audited model; run it from compute_audit")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    data, heat, config = result.data, result.heatmaps, result.config
    names = list(clf.class_names)
    atomic_write_text(out / "label-map.json", json.dumps([{"index": i, "name": n} for i, n in enumerate(names)]))

    with atomic_write(out / "dataset.input.h5", "w+b") as fh, h5py.File(fh, "w") as f:
        images = f.create_dataset("data", (len(data), 3, data.size, data.size), dtype="float32")
        for start in range(0, len(data), 1024):
            chunk = data.images[start : start + 1024]
            images[start : start + len(chunk)] = chunk.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        f["label"] = data.labels.astype(np.uint32)

    composite = config.composite
    options = {"norm": clf.meta.normalization} if composite == "epsilon_gamma_box" else {}
    explainer = LRP(clf.model, get_composite(composite, **options))
    m, classes = len(heat.index), len(names)
    with atomic_write(out / f"{composite}.attribution.h5", "w+b") as fh, h5py.File(fh, "w") as f:
        f["index"] = heat.index.astype(np.uint32)
        relevance = f.create_dataset("attribution", (m, 3, data.size, data.size), dtype="float32")
        labels = f.create_dataset("label", (m, classes), dtype="float32")
        logits = f.create_dataset("prediction", (m, classes), dtype="float32")
        for start in range(0, m, batch_size):
            rows = heat.index[start : start + batch_size]
            expl = explainer.explain(to_tensor(data.images[rows], clf.meta.normalization), data.labels[rows])
            sl = slice(start, start + len(rows))
            relevance[sl] = expl.relevance.float().cpu().numpy()
            out_relevance = torch.zeros_like(expl.logits)
            index = expl.targets[:, None]
            out_relevance.scatter_(1, index, expl.logits.gather(1, index))
            labels[sl] = out_relevance.float().cpu().numpy()
            logits[sl] = expl.logits.float().cpu().numpy()

    with atomic_write(out / "spray.analysis.h5", "w+b") as fh, h5py.File(fh, "w") as f:
        for c, sp in result.spray.items():
            group = f.require_group(f"class_{c:02d}")
            group["name"] = f"{c}: {names[c] if c < len(names) else c}"
            group["index"] = heat.index[heat.rows_of(c)].astype(np.uint32)
            spectral = group.require_group("embedding/spectral")
            spectral["name"] = "Spectral embedding"
            spectral["root"] = sp.embedding.astype(np.float32)
            spectral["eigenvalue"] = sp.eigenvalues.astype(np.float32)
            if c in result.tsne:
                tsne = group.require_group("embedding/tsne")
                tsne["name"] = "t-SNE"
                tsne["root"] = result.tsne[c].astype(np.float32)
            clustering = group.require_group("clustering/spectral")
            clustering["name"] = f"Spectral clustering (eigengap: {sp.n_clusters})"
            clustering["root"] = sp.labels.astype(np.uint32)
            clustering["base"] = spectral
            clustering["#clusters"] = sp.n_clusters
            repeat = max(1, data.size // sp.prototypes.shape[-1])
            proto = sp.prototypes.repeat(repeat, axis=1).repeat(repeat, axis=2).astype(np.float32)
            clustering["prototype/average/name"] = "Mean heatmap"
            clustering["prototype/average/root"] = proto

    project = "\n".join(
        [
            "project:",
            f"    name: klugerhans audit of {Path(str(result.info['model'].get('checkpoint') or 'model')).name}",
            f"    model: {clf.meta.model.arch} (width {clf.meta.model.width})",
            "    label_map: label-map.json",
            "    dataset:",
            f"        name: {config.data} {config.split}",
            "        type: hdf5",
            "        path: dataset.input.h5",
            f"        input_width: {data.size}",
            f"        input_height: {data.size}",
            "        up_sampling_method: none",
            "        down_sampling_method: none",
            "    attributions:",
            f"        attribution_method: LRP {composite}",
            "        attribution_strategy: true_label",
            "        sources:",
            f"        - {composite}.attribution.h5",
            "    analyses:",
            "    - analysis_method: Spectral",
            "      sources:",
            "      - spray.analysis.h5",
            "",
        ]
    )
    atomic_write_text(out / "project.yaml", project)
    return out / "project.yaml"
