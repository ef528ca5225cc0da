"""The one plugin manager, and the registry of what plugins registered.

Built-in plugins live in ``guardrail_plugins`` and are declared under the same
``guardrail`` entry-point group as any third-party plugin. Setting
``GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD=1`` loads only the built-ins.
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from guardrail.plugin import hookspecs
from guardrail.errors import PluginError

ENTRY_POINT_GROUP = "guardrail"
DISABLE_AUTOLOAD_ENV = "GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "GUARDRAIL_PLUGINS"  # comma-separated modules loaded as plugins without packaging
KINDS = ("sources", "deployers", "incident_sinks", "actions", "document_kinds")
KIND_LABEL = {
    "sources": "source",
    "deployers": "deployer",
    "incident_sinks": "incident sink",
    "actions": "action",
    "document_kinds": "document kind",
}


@dataclass
class Registered:
    name: str
    factory: Any
    plugin: str
    schema: Any = None
    """For a document kind: the pydantic model of its documents (``guardrail schema``)."""


@dataclass
class Registry:
    """Everything plugins registered, by kind and name."""

    sources: dict[str, Registered] = field(default_factory=dict)
    deployers: dict[str, Registered] = field(default_factory=dict)
    incident_sinks: dict[str, Registered] = field(default_factory=dict)
    actions: dict[str, Registered] = field(default_factory=dict)
    document_kinds: dict[str, Registered] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Any:
        """The factory registered as ``name``; a PluginError with suggestions otherwise."""
        table: dict[str, Registered] = getattr(self, kind)
        if name not in table:
            raise PluginError(unknown_name_message(KIND_LABEL[kind], name, table))
        return table[name].factory

    def build(self, kind: str, name: str, settings: Any, context: Any) -> Any:
        """An instance of plugin ``name`` of ``kind``: its ``Settings`` model validates
        ``settings`` (the plan's ``with:`` block), then the factory is called with them
        and the context. The one place a plugin instance is made."""
        factory = self.get(kind, name)
        model = getattr(factory, "Settings", None)
        return factory(model.model_validate(settings) if model is not None else settings, context)


def unknown_name_message(label: str, name: str, known: Any) -> str:
    names = sorted(known)
    message = f"unknown {label} {name!r}"
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message + (f"; known: {', '.join(names)}" if names else f"; no {label} plugins are installed")


@dataclass
class PluginInfo:
    name: str
    version: str
    origin: str
    module: str
    registers: dict[str, list[str]]


class GuardrailPluginManager(pluggy.PluginManager):
    registry: Registry
    entry_points: dict[str, tuple[str, str, str]]  # plugin name -> (dist, version, module)


def _register_into(table: dict[str, Registered], plugin: str, builtins: set[str]) -> Callable[..., None]:
    """A ``register`` callback. Registrations arrive in pluggy's call order and the first
    one of a name wins; a later one is ignored when either side is a built-in. The
    built-ins' hooks are ``trylast``, so they register after every other plugin: a
    plugin that registers a built-in's name replaces it. Two plugins that are not
    built-ins may not register the same name."""

    def register(name: str, factory: Any, *, schema: Any = None) -> None:
        current = table.get(name)
        if current is not None and current.plugin != plugin:
            if current.plugin in builtins or plugin in builtins:
                return
            raise PluginError(f"plugin {plugin!r} registers {name!r}, already registered by {current.plugin!r}")
        table[name] = Registered(name, factory, plugin, schema)

    return register


def get_plugin_manager(*, autoload: bool | None = None, extra_plugins: list[Any] = ()) -> GuardrailPluginManager:
    """A fresh manager with built-ins (and, unless disabled, third-party plugins) loaded.

    :param autoload: load third-party entry points; default: unless
        ``GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD`` is set to a true value.
    :param extra_plugins: plugin objects (modules or instances) registered after the
        entry points, for tests and embedding.
    """
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {"1", "true", "yes", "on"}
    pm = GuardrailPluginManager("guardrail")
    pm.add_hookspecs(hookspecs)
    pm.entry_points = {}
    found = [(ep, ep.value.startswith("guardrail_plugins.")) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for ep, builtin in sorted(found, key=lambda item: not item[1]):  # built-ins first: the others may replace them
        if not builtin and not autoload:
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        seen = pm.entry_points.get(ep.name)
        if seen is not None:
            if seen[2] == ep.value:
                continue  # the same distribution seen twice on sys.path
            if seen[0] != "builtin":
                raise PluginError(f"two plugins are named {ep.name!r}: {seen[2]} (from {seen[0]}) and {ep.value} "
                                  f"(from {dist}); uninstall one of them")
            pm.unregister(name=ep.name)  # a plugin named like a built-in replaces it
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must say who it is
            raise PluginError(f"plugin {ep.name!r} from {dist} failed to load: {exc}") from exc
        _register(pm, plugin, ep.name)
        version = ep.dist.version if ep.dist is not None else "?"
        pm.entry_points[ep.name] = ("builtin" if builtin else dist, version, ep.value)
    for module_name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f"{PLUGINS_ENV}: cannot import plugin module {module_name!r}: {exc}") from exc
        _register(pm, module, module_name)
        pm.entry_points[module_name] = (PLUGINS_ENV, "-", module_name)
    for plugin in extra_plugins:
        _register(pm, plugin, None)
    _check_pending(pm)
    pm.registry = _collect(pm)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str | None) -> None:
    if name is None:  # registered in code: its module or class name, unless that is taken
        name = _label(plugin) if pm.get_plugin(_label(plugin)) is None else None
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:  # a hookimpl whose arguments the spec lacks
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:]) or str(exc)
        raise PluginError(f"plugin {name or _label(plugin)!r}: {detail}") from exc
    except ValueError as exc:  # the same plugin object or name twice
        raise PluginError(f"plugin {name or _label(plugin)!r} cannot be registered: {exc}") from exc


def _label(plugin: Any) -> str:
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def _check_pending(pm: pluggy.PluginManager) -> None:
    """pluggy's ``check_pending``, with the plugin's name and a did-you-mean."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        known = [name for name in dir(hookspecs) if name.startswith("guardrail_")]
        unknown = [
            name for name, caller in vars(pm.hook).items()
            if not name.startswith("_") and not caller.has_spec()
            and any(impl.plugin is exc.plugin for impl in caller.get_hookimpls())
        ] or ["?"]
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; hooks are: {', '.join(known)}"
        name = pm.get_name(exc.plugin) or _label(exc.plugin)
        raise PluginError(f"plugin {name!r} implements {unknown[0]!r}, which is not a guardrail hook{hint}") from exc


def _collect(pm: pluggy.PluginManager) -> Registry:
    """Call every ``guardrail_register_*`` implementation in pluggy's own call order
    (``tryfirst`` first, ``trylast`` last, otherwise the last registered plugin first),
    each with a ``register`` that knows which plugin is registering."""
    registry = Registry()
    builtins = {name for name, (origin, _, _) in getattr(pm, "entry_points", {}).items() if origin == "builtin"}
    for kind in KINDS:
        hook = getattr(pm.hook, f"guardrail_register_{kind}")
        for impl in reversed(hook.get_hookimpls()):  # get_hookimpls() lists the call order backwards
            impl.function(register=_register_into(getattr(registry, kind), impl.plugin_name, builtins))
    return registry


def plugin_infos(pm: GuardrailPluginManager) -> list[PluginInfo]:
    """What ``guardrail plugins`` shows: each plugin and what it registers."""
    infos = []
    for name, plugin in pm.list_name_plugin():
        origin, version, module = pm.entry_points.get(name, ("registered in code", "-", getattr(plugin, "__name__", repr(plugin))))
        registers = {
            kind: sorted(r.name for r in getattr(pm.registry, kind).values() if r.plugin == name) for kind in KINDS
        }
        infos.append(PluginInfo(name, version, origin, module, {k: v for k, v in registers.items() if v}))
    return sorted(infos, key=lambda i: (i.origin != "builtin", i.name))
