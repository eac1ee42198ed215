"""Export the discovery stage as a ViRelAy project (Anders et al. 2021, "Software for dataset-wide XAI").

ViRelAy (``pip install klugerhans[virelay]``, then ``virelay project.yaml``) is a web viewer for SpRAy results. Its
project is a YAML file next to a label map and three kinds of HDF5 files, in the layout ViRelAy 0.6 reads:

* ``label-map.json``: ``index``, ``word_net_id`` (here the GTSRB folder name, ``00000`` to ``00042``) and ``name``
  of each class;
* ``dataset.input.h5``: ``data`` (N, 3, S, S) float32 images in [0, 1] and ``label`` (N,) uint16 class ids;
* ``<composite>.attribution.h5``: ``index`` (M,) rows of the explained images, ``attribution`` (M, 3, S, S) LRP
  relevance of the true class (recomputed at full resolution batch by batch, written slice by slice so memory stays
  bounded), ``label`` (M,) uint16 true class and ``prediction`` (M, C) logits;
* ``spray.analysis.h5`` (analysis method ``Spectral``): one group per class, named by its ``word_net_id``, with
  ``index`` (dataset rows), ``embedding/spectral`` (attribute ``eigenvalue``), ``cluster/eigengap`` (the SpRAy
  clusters, attribute ``k``) and ``prototype/eigengap`` (the mean heatmap of each cluster, S x S; ViRelAy ignores it);
* ``spray-tsne.analysis.h5`` (analysis method ``Spectral_tSNE``), only when the audit drew t-SNE views: the same for
  those classes, plus ``embedding/tsne``. ViRelAy offers the embeddings of an analysis method's first class for all
  of its classes, so classes without a t-SNE view stay out of this one.

Needs ``h5py``; ``tests/audit/test_virelay_server.py`` opens an export with a running ViRelAy server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import get_composite
from klugerhans.explain.lrp import LRP
from klugerhans.io import atomic_write, atomic_write_text
from klugerhans.models.preprocess import to_tensor

if TYPE_CHECKING:
    from klugerhans.audit.run import AuditResult

__all__ = ["export_virelay", "word_net_id"]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise KlugerhansError(
            "the ViRelAy export needs h5py: pip install 'klugerhans[virelay]', or run without --virelay"
        ) from None
    return h5py


def word_net_id(class_id: int) -> str:
    """The ``word_net_id`` ViRelAy keys a class by: its GTSRB folder name (``00004`` for class 4)."""
    return f"{class_id:05d}"


def _yaml(value: str) -> str:
    """``value`` as a YAML scalar: a JSON string is a valid double-quoted YAML string."""
    return json.dumps(value)


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
    label_map = [{"index": i, "word_net_id": word_net_id(i), "name": n} for i, n in enumerate(names)]
    atomic_write_text(out / "label-map.json", json.dumps(label_map, indent=1))

    with atomic_write(out / "dataset.input.h5", "w+b") as fh, h5py.File(fh, "w") as f:
        images = f.create_dataset("data", (len(data), 3, data.size, data.size), dtype="float32")
        for start in range(0, len(data), 1024):
            chunk = data.images[start : start + 1024]
            images[start : start + len(chunk)] = chunk.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        f["label"] = data.labels.astype(np.uint16)

    composite = config.composite
    # get_composite passes the normalisation only to composites that take it (the input-bounded ones)
    explainer = LRP(clf.model, get_composite(composite, norm=clf.meta.normalization), fallback=config.fallback)
    m, classes = len(heat.index), len(names)
    with atomic_write(out / f"{composite}.attribution.h5", "w+b") as fh, h5py.File(fh, "w") as f:
        f["index"] = heat.index.astype(np.uint32)
        f["label"] = data.labels[heat.index].astype(np.uint16)
        relevance = f.create_dataset("attribution", (m, 3, data.size, data.size), dtype="float32")
        logits = f.create_dataset("prediction", (m, classes), dtype="float32")
        for start in range(0, m, batch_size):
            rows = heat.index[start : start + batch_size]
            expl = explainer.attribute(to_tensor(data.images[rows], clf.meta.normalization), data.labels[rows])
            sl = slice(start, start + len(rows))
            relevance[sl] = expl.relevance.float().cpu().numpy()
            logits[sl] = expl.logits.float().cpu().numpy()

    # (analysis method, file, classes, with t-SNE): ViRelAy needs the same embeddings in every class of a method
    analyses = [("Spectral", "spray.analysis.h5", sorted(result.spray), False)]
    tsne_classes = sorted(set(result.tsne) & set(result.spray))
    if tsne_classes:
        analyses.append(("Spectral_tSNE", "spray-tsne.analysis.h5", tsne_classes, True))
    for _, filename, shown, with_tsne in analyses:
        with atomic_write(out / filename, "w+b") as fh, h5py.File(fh, "w") as f:
            for c in shown:
                sp = result.spray[c]
                group = f.require_group(word_net_id(c))
                group["index"] = heat.index[heat.rows_of(c)].astype(np.uint32)
                embedding = group.require_group("embedding")
                embedding["spectral"] = sp.embedding.astype(np.float32)
                embedding["spectral"].attrs["eigenvalue"] = sp.eigenvalues.astype(np.float32)
                if with_tsne:
                    embedding["tsne"] = result.tsne[c].astype(np.float32)
                    embedding["tsne"].attrs["embedding"] = "spectral"
                cluster = group.require_group("cluster")
                cluster["eigengap"] = sp.labels.astype(np.uint32)
                cluster["eigengap"].attrs["embedding"] = "spectral"
                cluster["eigengap"].attrs["k"] = sp.n_clusters
                repeat = max(1, data.size // sp.prototypes.shape[-1])
                group["prototype/eigengap"] = (
                    sp.prototypes.repeat(repeat, axis=1).repeat(repeat, axis=2).astype(np.float32)
                )

    checkpoint = Path(result.checkpoint or "model").name
    lines = [
        "project:",
        f"    name: {_yaml(f'klugerhans audit of {checkpoint}')}",
        f"    model: {_yaml(f'{clf.meta.model.arch} (width {clf.meta.model.width})')}",
        "    label_map: label-map.json",
        "    dataset:",
        f"        name: {_yaml(f'{config.data} {config.split}')}",
        "        type: hdf5",
        "        path: dataset.input.h5",
        f"        input_width: {data.size}",
        f"        input_height: {data.size}",
        "        up_sampling_method: none",
        "        down_sampling_method: none",
        "    attributions:",
        f"        attribution_method: {_yaml(f'LRP {composite}')}",
        "        attribution_strategy: true_label",
        "        sources:",
        f"        - {composite}.attribution.h5",
        "    analyses:",
    ]
    for method, filename, _, _ in analyses:
        lines += [f"    - analysis_method: {method}", "      sources:", f"      - {filename}"]
    atomic_write_text(out / "project.yaml", "\n".join([*lines, ""]))
    return out / "project.yaml"
