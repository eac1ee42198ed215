"""Rules for module types of your own: ``@register_module_rule(MyModule)`` on a propagator class.

Both engines consult this registry before anything else: the traced engine keeps a registered module as one node
(``torch.fx`` does not trace into it) and binds it to the registered propagator; the transformer engine runs the
module's forward through it, so that its backward is the propagator's. A propagator
(:class:`~klugerhans.explain.core.Propagator`) is built from the module and computes two things: ``forward(x)``,
the module's output and what its backward needs, and ``backward(saved, relevance)``, the relevance of the input
from that of the output. See docs/howto/module_rule.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from klugerhans.explain.core import Propagator
from klugerhans.registry import Registry

__all__ = ["MODULE_RULES", "ModuleRule", "module_rule_for", "register_module_rule"]


@dataclass(frozen=True)
class ModuleRule:
    """A module type and how to build the propagator of one of its instances."""

    module_type: type[nn.Module]
    propagator: Callable[[nn.Module], Propagator]
    """``propagator(module)``: the module's propagator (a :class:`Propagator` class is such a callable)."""


MODULE_RULES: Registry[ModuleRule] = Registry("module rule")
"""``module.qualified.ClassName`` -> :class:`ModuleRule`; instances of subclasses match too."""


def register_module_rule(module_type: type[nn.Module]) -> Callable[[Callable[[nn.Module], Propagator]], object]:
    """Decorator: explain every ``module_type`` instance with the decorated propagator class (or factory).

    Example:
        >>> @register_module_rule(SquaredReLU)
        ... class PassRelevance(Propagator): ...
    """

    def wrap(propagator: Callable[[nn.Module], Propagator]) -> object:
        name = f"{module_type.__module__}.{module_type.__qualname__}"
        MODULE_RULES.register(name)(ModuleRule(module_type, propagator))
        return propagator

    return wrap


def module_rule_for(module: nn.Module) -> ModuleRule | None:
    """The registered rule of ``module``'s type (the most recently registered one that matches), or None."""
    for rule in reversed(list(MODULE_RULES.values())):
        if isinstance(module, rule.module_type):
            return rule
    return None
