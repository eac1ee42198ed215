"""The plug-in registries: the Registry class itself, then every entry of every registry doing its job.

The parametrised test is built from :data:`klugerhans.registry.REGISTRIES` at collection time, so a new dataset,
architecture, composite, attribution or fix method is tested the moment it registers; a new *kind* of registry
fails :func:`test_every_kind_has_a_check` until it gets a check here.
"""

from __future__ import annotations

import inspect
import itertools
import typing
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

# Importing the packages fills the registries (datasets, architectures, composites, attribution and fix methods).
import klugerhans.audit
import klugerhans.bench
import klugerhans.data
import klugerhans.explain
import klugerhans.fix
import klugerhans.models.vgg
from klugerhans.audit.methods import METHODS, MethodOptions
from klugerhans.bench.baselines import BASELINES, run_baselines
from klugerhans.bench.grid import SUITES, make_suite
from klugerhans.data.classes import NUM_CLASSES
from klugerhans.data.dataset import DATASETS, load_dataset
from klugerhans.errors import KlugerhansError
from klugerhans.explain.composites import COMPOSITES
from klugerhans.explain.lrp import LRP
from klugerhans.explain.modules import MODULE_RULES
from klugerhans.fix.methods import FIX_METHODS, FixInputs, FixOutcome
from klugerhans.models.architectures import on_meta
from klugerhans.models.config import FAMILIES
from klugerhans.models.preprocess import Normalization
from klugerhans.models.vgg import MODELS, ModelConfig, create_model
from klugerhans.registry import REGISTRIES, Registry

# --- the Registry class -----------------------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry[Callable[[], int]]:
    """A fresh registry that leaves :data:`REGISTRIES` as it was (the parametrised test below iterates it)."""
    monkeypatch.setattr("klugerhans.registry.REGISTRIES", dict(REGISTRIES))
    return Registry("widget")


def test_register_and_look_up(registry: Registry[Callable[[], int]]) -> None:
    @registry.register("one")
    def one() -> int:
        return 1

    assert registry["one"] is one and registry.get_or_raise("one")() == 1
    assert "one" in registry and sorted(registry) == ["one"] and registry.kind == "widget"
    assert klugerhans.registry.REGISTRIES["widget"] is registry
    registry.register("one")(one)  # registering the same object again (a re-import) is harmless
    assert registry["one"] is one


def test_a_name_registered_twice_is_an_error(registry: Registry[Callable[[], int]]) -> None:
    registry.register("one")(lambda: 1)
    with pytest.raises(KlugerhansError, match="widget 'one' is registered twice"):
        registry.register("one")(lambda: 2)


def test_unknown_name_suggests_the_closest(registry: Registry[Callable[[], int]]) -> None:
    for name in ("alpha", "beta"):
        registry.register(name)(lambda: 0)
    with pytest.raises(
        KlugerhansError, match=r"^unknown widget 'alpah': did you mean alpha\? choose one of alpha, beta$"
    ):
        registry.get_or_raise("alpah")
    with pytest.raises(KlugerhansError, match=r"^unknown widget 'zzz': choose one of alpha, beta$"):
        registry.get_or_raise("zzz")


def test_a_misspelt_composite_suggests_the_right_one() -> None:
    with pytest.raises(KlugerhansError, match="did you mean epsilon_plus_flat") as err:
        COMPOSITES.get_or_raise("epsilon_plus_flta")
    assert len(str(err.value).splitlines()) == 1


# --- every entry of every registry ------------------------------------------------------------------------------

_X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
"""A batch of two normalised 32 px inputs."""


def _tiny_vgg(arch: str = "vgg11_bn") -> nn.Module:
    torch.manual_seed(0)
    return create_model(ModelConfig(arch=arch, width=0.125)).eval()


def _check_dataset(name: str, request: pytest.FixtureRequest) -> None:
    # Datasets read from files run only where the files are (the gtsrb_dir fixture skips otherwise).
    data_dir = str(request.getfixturevalue("gtsrb_dir")) if name == "gtsrb" else None
    if name == "folder":  # a user's ImageFolder tree: two classes, train and test
        root = request.getfixturevalue("tmp_path") / "images"
        for split, cls, i in itertools.product(("train", "test"), ("c0", "c1"), range(2)):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 30), (60 * i, 100, 200)).save(root / split / cls / f"{i}.png")
        data_dir = str(root)
    ds = load_dataset(name, data_dir=data_dir, max_images=4)
    for split in (ds.train, ds.test):
        assert 0 < len(split) <= 4
        assert split.images.shape == (len(split), 32, 32, 3) and split.images.dtype == np.uint8
        assert split.labels.min() >= 0 and split.labels.max() < NUM_CLASSES
    assert ds.info["name"] == name


def _check_architecture(name: str, request: pytest.FixtureRequest) -> None:
    build = MODELS[name].build
    assert build is not None
    model = build(ModelConfig(arch=name, width=0.125)).eval()
    with torch.no_grad():
        logits = model(_X)
    assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()


def _check_architecture_family(name: str, request: pytest.FixtureRequest) -> None:
    family = FAMILIES[name]
    if family.names is None:  # models handed over in memory: any name is described, none is built
        spec = family.spec("AnyNet")
        assert spec.build is None and ModelConfig(family=name, arch="AnyNet", num_classes=1).spec == spec
        return
    try:
        names = sorted(family.names())
    except KlugerhansError:  # an optional family whose package is not installed (timm)
        pytest.skip(f"{name} is not installed")
    spec = family.spec(names[0])
    size = spec.input_sizes[0] if spec.input_sizes else 224
    model = on_meta(lambda: create_model(family=name, arch=names[0], input_size=size, num_classes=3)).eval()
    assert model(torch.zeros(1, 3, size, size, device="meta")).shape == (1, 3)


def _check_composite(name: str, request: pytest.FixtureRequest) -> None:
    expl = LRP(_tiny_vgg(), name, norm=Normalization()).attribute(_X)
    assert expl.relevance.shape == _X.shape and torch.isfinite(expl.relevance).all()
    assert expl.relevance.abs().sum() > 0


def _check_attribution_method(name: str, request: pytest.FixtureRequest) -> None:
    options = MethodOptions(ig_steps=2, smoothgrad_samples=2)
    attributor = METHODS[name](_tiny_vgg(), options)
    attributions = attributor(_X, torch.tensor([0, 5]))
    assert attributions.shape == (2, 32, 32) and torch.isfinite(attributions).all()


def _check_fix_method(name: str, request: pytest.FixtureRequest) -> None:
    fn = FIX_METHODS[name]
    assert callable(fn)
    params = list(inspect.signature(fn).parameters.values())
    assert len(params) == 1 and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    hints = typing.get_type_hints(fn)
    assert hints[params[0].name] is FixInputs and hints["return"] is FixOutcome


def _check_suite(name: str, request: pytest.FixtureRequest) -> None:
    jobs = make_suite(name)
    assert jobs and len({j.id for j in jobs}) == len(jobs)
    assert any(j.manipulated for j in jobs) and any(not j.manipulated for j in jobs)


def _check_baseline(name: str, request: pytest.FixtureRequest) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (36, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 12)
    torch.manual_seed(0)
    model = create_model(ModelConfig(width=0.125, num_classes=3)).eval()
    (result,) = run_baselines(model, images, labels, Normalization(), names=[name], max_per_class=12).values()
    assert result.name == name and set(result.scores) == {0, 1, 2} and set(result.flagged) <= {0, 1, 2}


def _check_module_rule(name: str, request: pytest.FixtureRequest) -> None:
    rule = MODULE_RULES[name]
    assert issubclass(rule.module_type, nn.Module) and callable(rule.propagator)
    assert name == f"{rule.module_type.__module__}.{rule.module_type.__qualname__}"


_CHECKS: dict[str, Callable[[str, pytest.FixtureRequest], None]] = {
    "dataset": _check_dataset,
    "architecture": _check_architecture,
    "architecture family": _check_architecture_family,
    "composite": _check_composite,
    "attribution method": _check_attribution_method,
    "fix method": _check_fix_method,
    "suite": _check_suite,
    "baseline": _check_baseline,
    "module rule": _check_module_rule,
}
_ENTRIES = [(kind, name) for kind, registry in REGISTRIES.items() for name in sorted(registry)]


def test_every_kind_has_a_check() -> None:
    assert set(REGISTRIES) == set(_CHECKS)
    kinds = {DATASETS.kind, MODELS.kind, FAMILIES.kind, COMPOSITES.kind, METHODS.kind, FIX_METHODS.kind, SUITES.kind}
    kinds |= {BASELINES.kind}
    assert kinds | {MODULE_RULES.kind} == set(_CHECKS)
    # module rules are for users' own module types: none ship
    assert all(REGISTRIES[kind] for kind in kinds), "every registry has at least one entry"


@pytest.mark.parametrize(("kind", "name"), _ENTRIES, ids=[f"{kind}:{name}" for kind, name in _ENTRIES])
def test_every_entry_works(kind: str, name: str, request: pytest.FixtureRequest) -> None:
    _CHECKS[kind](name, request)
