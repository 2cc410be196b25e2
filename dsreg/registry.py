"""The registry: every dataset and model that the loaded plugins registered, with provenance.

The host owns naming: the ``register`` callbacks handed to plugins validate names, reject a name
already taken (naming both sides) and record which plugin registered what.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .builder import NAME_PATTERN, Builder
from .errors import PluginError, UnknownDatasetError

__all__ = ["Registry", "DatasetEntry", "ModelEntry", "PluginRecord"]


@dataclass
class PluginRecord:
    """One plugin: where it came from and, if it failed, why."""

    name: str
    dist: str | None = None
    version: str | None = None
    errors: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "dist": self.dist, "version": self.version, "ok": self.ok,
            "errors": self.errors, "datasets": self.datasets, "models": self.models,
        }


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    builder: type[Builder]
    plugin: PluginRecord
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., Any]
    tasks: tuple[str, ...]
    plugin: PluginRecord


class Registry:
    """Datasets, aliases, models and the plugins they came from."""

    def __init__(self) -> None:
        self.datasets: dict[str, DatasetEntry] = {}
        self.aliases: dict[str, str] = {}
        self.models: dict[str, ModelEntry] = {}
        self.plugins: dict[str, PluginRecord] = {}
        #: The pluggy manager the plugins were loaded into (None for a hand-built registry).
        self.manager: Any = None

    # -- registration ------------------------------------------------------------------------
    def plugin(self, name: str, dist: str | None = None, version: str | None = None) -> PluginRecord:
        """Return the record of plugin ``name``, creating it on first use."""
        record = self.plugins.get(name)
        if record is None:
            record = self.plugins[name] = PluginRecord(name, dist, version)
        return record

    def add_dataset(self, plugin: PluginRecord, builder: type[Builder], aliases: Iterable[str] = ()) -> None:
        """Register ``builder`` for ``plugin``; raise PluginError on an invalid or taken name."""
        if not (isinstance(builder, type) and issubclass(builder, Builder)):
            raise PluginError(f"register() expects a dsreg.Builder subclass, got {builder!r}")
        builder.validate()
        aliases = tuple(aliases)
        for name in (builder.name, *aliases):
            if not NAME_PATTERN.match(name):
                raise PluginError(f"alias {name!r} is invalid; use lowercase letters, digits, '-', '_' or '.'")
            owner = self._owner(name)
            if owner is not None:
                raise PluginError(
                    f"dataset name {name!r} from plugin {plugin.name!r} is already registered by "
                    f"plugin {owner!r}; rename one of them or limit DSREG_LOAD_PLUGINS"
                )
        self.datasets[builder.name] = DatasetEntry(builder.name, builder, plugin, aliases)
        for alias in aliases:
            self.aliases[alias] = builder.name
        plugin.datasets.append(builder.name)

    def add_model(self, plugin: PluginRecord, name: str, factory: Callable[..., Any], tasks: Iterable[str] = ()) -> None:
        """Register a model factory for the given tasks."""
        if not NAME_PATTERN.match(name):
            raise PluginError(f"model name {name!r} is invalid; use lowercase letters, digits, '-', '_' or '.'")
        if not callable(factory):
            raise PluginError(f"model {name!r}: factory {factory!r} is not callable")
        if name in self.models:
            other = self.models[name].plugin.name
            raise PluginError(f"model name {name!r} from plugin {plugin.name!r} is already registered by plugin {other!r}")
        self.models[name] = ModelEntry(name, factory, tuple(tasks), plugin)
        plugin.models.append(name)

    def remove_plugin_entries(self, plugin: PluginRecord) -> None:
        """Forget everything ``plugin`` registered (used when its hook fails halfway)."""
        for name in plugin.datasets:
            entry = self.datasets.pop(name, None)
            for alias in entry.aliases if entry else ():
                self.aliases.pop(alias, None)
        for name in plugin.models:
            self.models.pop(name, None)
        plugin.datasets.clear()
        plugin.models.clear()

    def _owner(self, name: str) -> str | None:
        if name in self.datasets:
            return self.datasets[name].plugin.name
        if name in self.aliases:
            return self.datasets[self.aliases[name]].plugin.name
        return None

    # -- lookup ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Return every registered dataset name, sorted."""
        return sorted(self.datasets)

    def get(self, name: str) -> DatasetEntry:
        """Return the entry for ``name`` or an alias; raise UnknownDatasetError with close names."""
        key = self.aliases.get(name, name)
        if key in self.datasets:
            return self.datasets[key]
        close = difflib.get_close_matches(name, [*self.datasets, *self.aliases], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        failed = [p.name for p in self.plugins.values() if not p.ok]
        broken = f"; plugins that failed to load: {', '.join(failed)} (see `dsreg plugins`)" if failed else ""
        raise UnknownDatasetError(
            f"no dataset named {name!r}; {hint}`dsreg list` shows the registered ones, and a plugin "
            f"package (e.g. pip install dsreg-<name>) adds more{broken}"
        )

    def models_for(self, task: str) -> list[ModelEntry]:
        """Return the models registered for ``task``, in registration order."""
        return [m for m in self.models.values() if task in m.tasks]

    def failures(self) -> list[PluginRecord]:
        return [p for p in self.plugins.values() if not p.ok]
