"""The registry: every dataset and model that the loaded plugins registered, with provenance.

The host owns naming: the ``register`` callbacks handed to plugins validate names, reject a name
already taken (naming both sides, and keeping the refusal as a ``Clash``) and record which plugin
registered what.

An unknown name that a plugin package provides says which package to install: installed packages
advertise their dataset names in the entry point group ``dsreg.names`` (read from their metadata,
never imported), and ``KNOWN_PACKAGES`` names those of the bundled plugins, which may not be installed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .builder import NAME_PATTERN, Builder
from .errors import PluginError, UnknownDatasetError

__all__ = ["Registry", "DatasetEntry", "ModelEntry", "PluginRecord", "Clash", "NAMES_GROUP", "KNOWN_PACKAGES"]

#: Entry point group whose entry point names are the dataset names a package provides (the values
#: are never loaded): how a plugin package advertises its names without being imported.
NAMES_GROUP = "dsreg.names"

#: The dataset names of the plugin packages shipped with dsreg, so that a name says what to install
#: even where its package is absent (an absent package's entry points cannot be read).
KNOWN_PACKAGES: dict[str, tuple[str, ...]] = {
    "dsreg-audio": ("audiofolder", "dtmf"),
    "dsreg-image": ("imagefolder", "shapes"),
    "dsreg-notmnist": ("notmnist", "notmnist-small", "notmnist-idx", "notmnist-synth"),
    "dsreg-text": ("textclass", "sentiment-words"),
}


@dataclass(frozen=True)
class Clash:
    """A name a plugin tried to register after another plugin had taken it."""

    kind: str  # "dataset" or "model"
    name: str
    plugin: str
    owner: str

    def __str__(self) -> str:
        return f"{self.kind} name {self.name!r} from plugin {self.plugin!r} is already registered by plugin {self.owner!r}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin, "owner": self.owner}


@dataclass
class PluginRecord:
    """One plugin: where it came from and, if it failed, why."""

    name: str
    dist: str | None = None
    version: str | None = None
    errors: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    #: The names this plugin lost to another plugin (each also one line of ``errors``).
    clashes: list[Clash] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def failed(self) -> bool:
        """True when something other than a name clash went wrong: an import, a hook, an invalid registration."""
        # Each clash the loader meets adds exactly one line to ``errors``; any line beyond those is a failure.
        return len(self.errors) > len(self.clashes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dist": self.dist,
            "version": self.version,
            "ok": self.ok,
            "errors": self.errors,
            "datasets": self.datasets,
            "models": self.models,
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
                clash = Clash("dataset", name, plugin.name, owner)
                plugin.clashes.append(clash)
                raise PluginError(f"{clash}; rename one of them or limit DSREG_LOAD_PLUGINS")
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
            clash = Clash("model", name, plugin.name, self.models[name].plugin.name)
            plugin.clashes.append(clash)
            raise PluginError(str(clash))
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
        hint = self.install_hint(name)
        if hint is not None:
            raise UnknownDatasetError(f"no dataset named {name!r}; {hint}")
        close = difflib.get_close_matches(name, [*self.datasets, *self.aliases], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        failed = [p.name for p in self.plugins.values() if p.failed]
        broken = f"; plugins that failed to load: {', '.join(failed)} (see `dsreg plugins`)" if failed else ""
        raise UnknownDatasetError(
            f"no dataset named {name!r}; {hint}`dsreg list` shows the registered ones, and a plugin "
            f"package (e.g. pip install dsreg-<name>) adds more{broken}"
        )

    def models_for(self, task: str) -> list[ModelEntry]:
        """Return the models registered for ``task``, in registration order."""
        return [m for m in self.models.values() if task in m.tasks]

    def failures(self) -> list[PluginRecord]:
        """Return the plugins with any error, name clashes included."""
        return [p for p in self.plugins.values() if not p.ok]

    def failed(self) -> list[PluginRecord]:
        """Return the plugins that failed other than by a name clash."""
        return [p for p in self.plugins.values() if p.failed]

    def clashes(self) -> list[Clash]:
        """Return every registration refused because another plugin had taken the name."""
        return [clash for p in self.plugins.values() for clash in p.clashes]

    def install_hint(self, name: str) -> str | None:
        """Return what to do to get dataset ``name`` when a known plugin package provides it, else None."""
        package = provider(name)
        if package is None:
            return None
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            return f"the plugin package {package} provides it and is not installed: pip install {package}"
        entry_points = sorted(ep.name for ep in dist.entry_points if ep.group == "dsreg")
        loaded = [self.plugins[ep] for ep in entry_points if ep in self.plugins]
        failed = [p.name for p in loaded if p.failed]
        if failed:
            return f"{package} provides it, but its plugin {failed[0]!r} failed to load: `dsreg plugins` shows why"
        if entry_points and not loaded:
            return (
                f"{package} provides it, but DSREG_LOAD_PLUGINS leaves out its plugin {entry_points[0]!r}: "
                f"add {entry_points[0]} to DSREG_LOAD_PLUGINS or unset it"
            )
        return f"{package} {dist.version} is installed and advertises it but does not register it: pip install --upgrade {package}"


def provider(name: str) -> str | None:
    """Return the distribution that provides dataset ``name``: an installed package advertising it, else a bundled one."""
    for ep in metadata.entry_points(group=NAMES_GROUP):
        dist = getattr(ep, "dist", None)
        if ep.name == name and dist is not None:
            return str(dist.name)
    for package, names in KNOWN_PACKAGES.items():
        if name in names:
            return package
    return None
