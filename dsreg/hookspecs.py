"""The whole plugin contract: three hooks, each handed a host-owned callback or object.

A plugin module (or object) implements any of these with ``@dsreg.hookimpl`` and is published
under the entry point group ``dsreg``. The host owns naming, aliases, collisions and provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("dsreg")
hookimpl = pluggy.HookimplMarker("dsreg")


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register Builder classes: call ``register(BuilderClass, aliases=())`` for each."""


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model factories: call ``register(name, factory, tasks=(...))`` for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the ``dsreg`` command group."""


# Used by the registry and the docs test to enumerate the contract.
HOOKS: dict[str, Any] = {
    "register_datasets": register_datasets,
    "register_models": register_models,
    "register_commands": register_commands,
}
