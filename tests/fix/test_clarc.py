"""P-ClArC: the artefact subspace, the projection and its folding into the head (Anders et al. 2022)."""

import copy

import numpy as np
import pytest
import torch

from klugerhans.errors import KlugerhansError
from klugerhans.fix.clarc import (
    ArtefactSubspace,
    artefact_subspace,
    fold_projection,
    penultimate_features,
    project_features,
    train_head,
)
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import ModelConfig, create_model


def test_subspace_recovers_a_planted_direction_and_the_reference():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(200, 16, generator=g)
    direction = torch.zeros(16)
    direction[3], direction[7] = 0.6, 0.8
    strength = 1.0 + torch.rand(200, 1, generator=g)
    sub = artefact_subspace(clean + strength * direction, clean, energy=0.9, max_dims=4)
    assert sub.basis.shape == (16, 1)
    assert abs(float(sub.basis[:, 0] @ direction)) > 0.999
    assert torch.allclose(sub.reference, clean.mean(0), atol=1e-6)
    assert sub.energy >= 0.9


def test_projection_removes_the_artefact_component_and_is_idempotent():
    v = torch.linalg.qr(torch.randn(10, 2, generator=torch.Generator().manual_seed(1)))[0]
    sub = ArtefactSubspace(basis=v, reference=torch.full((10,), 0.5), energy=1.0)
    h = torch.randn(7, 10, generator=torch.Generator().manual_seed(2))
    p = project_features(h, sub)
    assert torch.allclose((p - sub.reference) @ v, torch.zeros(7, 2), atol=1e-5)  # at the reference along V
    assert torch.allclose(project_features(p, sub), p, atol=1e-5)
    orthogonal = h - (h @ v) @ v.T
    assert torch.allclose(p - (p @ v) @ v.T, orthogonal, atol=1e-5)  # nothing else changes


def test_folded_model_equals_projection_then_head():
    torch.manual_seed(0)
    model = create_model(ModelConfig(width=0.125)).eval()
    norm = Normalization()
    images = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    h = penultimate_features(model, images, norm)
    v = torch.linalg.qr(torch.randn(h.shape[1], 3))[0]
    sub = ArtefactSubspace(basis=v, reference=h.mean(0), energy=1.0)
    expected = model.classifier(project_features(h, sub))
    folded = copy.deepcopy(model)
    fold_projection(folded, sub)
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - torch.tensor(norm.mean).view(1, 3, 1, 1)) / (
        torch.tensor(norm.std).view(1, 3, 1, 1)
    )
    with torch.no_grad():
        assert torch.allclose(folded(x), expected, atol=1e-4)


def test_head_training_lowers_the_loss_and_bad_inputs_are_refused():
    torch.manual_seed(0)
    model = create_model(ModelConfig(width=0.125, num_classes=3))
    feats = torch.rand(90, model.classifier[0].in_features)
    labels = np.repeat(np.arange(3), 30)
    feats[labels == 1, :4] += 2.0
    feats[labels == 2, 4:8] += 2.0
    losses = train_head(model, feats, labels, epochs=30, lr=0.05)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(KlugerhansError):
        train_head(model, feats, labels[:10])
    with pytest.raises(KlugerhansError):
        artefact_subspace(feats, feats[:, :5])
    with pytest.raises(KlugerhansError):
        artefact_subspace(feats, feats)  # no difference: nothing to project out
