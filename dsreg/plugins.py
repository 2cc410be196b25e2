"""Plugin discovery: load the entry point group ``dsreg`` into a pluggy manager, one plugin at a time.

Isolation is the point: a plugin that fails to import, raises in a hook or registers a name that
is taken is recorded (plugin, distribution, version, error) and skipped; the rest keep working.
``DSREG_STRICT_PLUGINS=1`` turns any such failure into a PluginError; ``DSREG_LOAD_PLUGINS=a,b``
loads only the named entry points (an empty value loads none). ``problems_line`` sums up what went
wrong in one line (``dsreg list`` prints it on stderr); ``unknown_hooks`` finds hook implementations
that match no hookspec (a misspelt hook is otherwise silently never called).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import NAMES_GROUP, PluginRecord, Registry

__all__ = [
    "GROUP",
    "NAMES_GROUP",
    "get_registry",
    "use_registry",
    "load_registry",
    "plugin_manager",
    "call_hook",
    "problems_line",
    "unknown_hooks",
]

GROUP = "dsreg"
#: Plugins that ship inside the core distribution, registered through the same hooks.
DEFAULT_PLUGINS: tuple[str, ...] = ("dsreg.train.models",)

_registry: Registry | None = None
_manager: pluggy.PluginManager | None = None


def _strict() -> bool:
    return os.environ.get("DSREG_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def _allowed() -> set[str] | None:
    value = os.environ.get("DSREG_LOAD_PLUGINS")
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _fail(record: PluginRecord, stage: str, exc: BaseException, strict: bool | None = None) -> None:
    message = f"{stage}: {type(exc).__name__}: {exc}".rstrip(": ")
    record.errors.append(message)
    if _strict() if strict is None else strict:
        raise PluginError(
            f"plugin {record.name!r} ({record.dist or 'unknown distribution'} {record.version or ''}) failed, "
            f"{message}; unset DSREG_STRICT_PLUGINS to skip it"
        ) from exc


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def plugin_manager(registry: Registry, strict: bool | None = None) -> pluggy.PluginManager:
    """Return a new pluggy manager with every allowed plugin registered (import failures recorded).

    ``strict`` overrides DSREG_STRICT_PLUGINS (None: read it).
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allowed = _allowed()
    for module_name in DEFAULT_PLUGINS:
        record = registry.plugin(module_name, "dsreg", _dsreg_version())
        try:
            pm.register(__import__(module_name, fromlist=["_"]), name=module_name)
        except Exception as exc:  # a broken default plugin must not break the others either
            _fail(record, "import", exc, strict)
    seen: set[str] = set()
    for ep in _entry_points():
        if ep.name in seen or (allowed is not None and ep.name not in allowed):
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        record = registry.plugin(ep.name, dist.name if dist else None, dist.version if dist else None)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            _fail(record, "import", exc, strict)
    return pm


def call_hook(
    pm: pluggy.PluginManager, registry: Registry, hook: str, make_arg: Callable[[PluginRecord], Any], strict: bool | None = None
) -> None:
    """Call ``hook`` on each plugin separately so one plugin's exception cannot stop the others."""
    argname = _hook_args(hook)[0]
    for impl in getattr(pm.hook, hook).get_hookimpls():
        record = registry.plugin(impl.plugin_name)
        # A name lost to another plugin costs only that name: the plugin's other hooks still run.
        if record.failed and hook != "register_commands":
            continue
        try:
            impl.function(**{argname: make_arg(record)})
        except Exception as exc:
            registry.remove_plugin_entries(record)
            _fail(record, hook, exc, strict)


def _hook_args(hook: str) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(hookspecs.HOOKS[hook]).parameters)


def load_registry(strict: bool | None = None) -> Registry:
    """Discover plugins and return a fresh registry of their datasets and models.

    ``strict`` overrides DSREG_STRICT_PLUGINS (None: read it); ``dsreg doctor`` passes False to see every plugin.
    """
    registry = Registry()
    pm = plugin_manager(registry, strict)

    def dataset_callback(record: PluginRecord) -> Callable[..., None]:
        def register(builder: Any, aliases: tuple[str, ...] | list[str] = ()) -> None:
            try:
                registry.add_dataset(record, builder, aliases)
            except PluginError as exc:  # a clash skips this dataset only; the plugin's others stay
                _fail(record, "register_datasets", exc, strict)

        return register

    def model_callback(record: PluginRecord) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any], tasks: tuple[str, ...] | list[str] = ()) -> None:
            try:
                registry.add_model(record, name, factory, tasks)
            except PluginError as exc:
                _fail(record, "register_models", exc, strict)

        return register

    call_hook(pm, registry, "register_datasets", dataset_callback, strict)
    call_hook(pm, registry, "register_models", model_callback, strict)
    registry.manager = pm
    return registry


def get_registry() -> Registry:
    """Return the process-wide registry, loading plugins on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


@contextlib.contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process-wide one for the duration of the block (tests, embedding)."""
    global _registry
    previous, _registry = _registry, registry
    try:
        yield registry
    finally:
        _registry = previous


def reset() -> None:
    """Forget the loaded registry so the next use rediscovers plugins."""
    global _registry
    _registry = None


def _dsreg_version() -> str | None:
    try:
        return metadata.version("dsreg")
    except metadata.PackageNotFoundError:
        return None


def format_failure(record: PluginRecord) -> str:
    """Return one line describing a failed plugin."""
    where = f"{record.dist} {record.version}" if record.dist else "unknown distribution"
    return f"{record.name} ({where}): {'; '.join(record.errors)}"


def problems_line(registry: Registry | None = None) -> str | None:
    """Return one line naming how many plugins failed and how many names clashed, or None when none did."""
    registry = registry if registry is not None else get_registry()
    failed, clashes = len(registry.failed()), len(registry.clashes())
    parts = []
    if failed:
        parts.append(f"{failed} plugin{'s' if failed != 1 else ''} failed to load")
    if clashes:
        parts.append(f"{clashes} name clash{'es' if clashes != 1 else ''}")
    return f"{', '.join(parts)}: see `dsreg plugins`" if parts else None


def unknown_hooks(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """Return ``(plugin, hook)`` for each hook implementation that matches no hookspec (a misspelt name).

    pluggy's ``check_pending`` raises on the first one; this lists them all, skipping ``optionalhook`` ones.
    """
    found = []
    for hook, caller in sorted(vars(pm.hook).items()):
        if hook.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                found.append((impl.plugin_name, hook))
    return found
