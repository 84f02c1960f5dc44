"""Loading the field plugins and checking them.

Plugins are found only through the ``smartcity.fields`` entry-point group, the city's own
sixteen exactly like a third party's. Each is loaded by pluggy's own entry-point loader, one
name at a time, so that a plugin that fails to import or breaks a hook specification is
reported by name instead of aborting the scan halfway.

Every hook of a plugin is called through a pluggy hook caller restricted to that plugin
(:meth:`pluggy.PluginManager.subset_hook_caller`): pluggy hands back an anonymous list of
results, and restricting the caller is how a result stays tied to the field that produced
it while tracing, wrappers and argument checking keep working. The restricted callers are
made once, at load time, and reused for ``derive`` on the ingest path.

Policy: by default, one refused plugin stops the load (:class:`FieldLoadError` listing
every refused plugin and every problem of each). A city platform should not start with a
field silently missing. ``strict=False`` loads the valid ones and logs the refused.

What the load produces, :class:`Field` and :class:`FieldHost`, is in
:mod:`smartcity.fields.host`; the checks of a catalogue are in :mod:`smartcity.fields.validation`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import MappingProxyType

import pluggy

from smartcity.fields import hookspecs
from smartcity.fields.errors import FieldHostError, FieldLoadError, PluginError
from smartcity.fields.host import Field, FieldHost, PluginOrigin
from smartcity.fields.markers import ENTRY_POINT_GROUP, PROJECT
from smartcity.fields.model import Derivation
from smartcity.fields.tracing import enable_hook_tracing
from smartcity.fields.validation import Catalogue, check_across, check_catalogue, collect
from smartcity.runtime.config import PluginSettings

log = logging.getLogger("smartcity.fields")


def load_fields(
    settings: PluginSettings | None = None,
    *,
    extra_plugins: Iterable[tuple[str, object]] = (),
    trace: bool = False,
    strict: bool = True,
) -> FieldHost:
    """Load, check and register every selected field plugin.

    ``settings`` selects plugins by entry-point name (``enabled`` empty means all) and may
    switch tracing on (``trace_hooks``); build it with
    :func:`smartcity.runtime.config.load_settings` so that ``SMARTCITY_PLUGINS__*``
    variables apply. ``extra_plugins`` are ``(name, plugin)`` pairs registered directly,
    as an embedding application would, and checked like installed ones. ``trace`` logs
    every hook call (see :mod:`smartcity.fields.tracing`).

    Raises :class:`FieldHostError` when ``settings`` names a plugin that is not installed,
    and :class:`FieldLoadError` when a plugin is refused and ``strict`` is true.
    """
    settings = settings if settings is not None else PluginSettings()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    stop_tracing = enable_hook_tracing(pm) if trace or settings.trace_hooks else None
    try:
        return _Loader(pm, settings, list(extra_plugins)).load(strict, stop_tracing)
    except BaseException:
        if stop_tracing is not None:
            stop_tracing()
        raise


class _Loader:
    """One load: discovery, selection, registration, catalogue checks."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        settings: PluginSettings,
        extras: list[tuple[str, object]],
    ) -> None:
        self.pm = pm
        self.settings = settings
        self.extras = extras
        self.problems: dict[str, list[str]] = defaultdict(list)
        self.origins: dict[str, PluginOrigin] = {}

    def load(self, strict: bool, stop_tracing: Callable[[], None] | None) -> FieldHost:
        self._register()
        registered = {
            name: plugin for name, plugin in self.pm.list_name_plugin() if plugin is not None
        }
        callers = {
            name: self._callers(plugin, registered.values()) for name, plugin in registered.items()
        }
        catalogues = self._check(registered, callers)

        refused = [
            PluginError(name, self.origins[name].describe(), found)
            for name, found in sorted(self.problems.items())
            if found
        ]
        if refused and strict:
            raise FieldLoadError(refused)
        for error in refused:
            log.error("%s", error)
            if self.pm.has_plugin(error.plugin):
                self.pm.unregister(name=error.plugin)
        self.pm.check_pending()

        accepted = [name for name in catalogues if not self.problems[name]]
        fields = [
            self._field(name, registered[name], catalogues[name], callers[name])
            for name in accepted
        ]
        log.info("loaded %d field plugin(s): %s", len(fields), ", ".join(sorted(accepted)))
        return FieldHost(self.pm, fields, refused, stop_tracing)

    def _register(self) -> None:
        """Discover, select and register; problems so far are import and hook-spec ones."""
        entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        selected = self._select({ep.name for ep in entry_points} | {n for n, _ in self.extras})
        candidates = self._without_duplicates(entry_points, selected)
        for ep in entry_points:
            if ep.name in candidates:
                self._load_entry_point(ep)
        for name, plugin in self.extras:
            if name in candidates:
                self._register_direct(name, plugin)
        self._find_unknown_hooks()

    def _check(
        self,
        registered: Mapping[str, object],
        callers: Mapping[str, Mapping[str, pluggy.HookCaller]],
    ) -> dict[str, Catalogue]:
        """Call each plugin's catalogue hooks and check what they declared."""
        catalogues = {}
        for name, plugin in registered.items():
            implemented = {caller.name for caller in self.pm.get_hookcallers(plugin) or ()}
            catalogue, found = collect(partial(_call, callers[name]), implemented)
            self.problems[name] += found
            if catalogue is not None:
                self.problems[name] += check_catalogue(name, catalogue)
                catalogues[name] = catalogue
        for name, found in check_across(catalogues).items():
            self.problems[name] += found
        return catalogues

    def _select(self, known: set[str]) -> set[str]:
        enabled, disabled = set(self.settings.enabled), set(self.settings.disabled)
        mistakes = []
        for key, names in (("enabled", enabled), ("disabled", disabled)):
            for name in sorted(names - known):
                mistakes.append(
                    f"plugins.{key} names {name!r}, but no installed distribution registers "
                    f"a {ENTRY_POINT_GROUP!r} entry point of that name"
                )
        for name in sorted(enabled & disabled):
            mistakes.append(f"plugin {name!r} is both in plugins.enabled and plugins.disabled")
        if mistakes:
            installed = ", ".join(sorted(known)) or "none"
            raise FieldHostError("\n".join([*mistakes, f"installed field plugins: {installed}"]))
        selected = {name for name in known if (not enabled or name in enabled)} - disabled
        for name in sorted(known - selected):
            self.pm.set_blocked(name)
        return selected

    def _without_duplicates(
        self, entry_points: list[importlib.metadata.EntryPoint], selected: set[str]
    ) -> set[str]:
        """Names registered once; a name claimed twice is refused on every claim, because
        whichever happened to load first would depend on the order of ``sys.path``."""
        claims: dict[str, list[PluginOrigin]] = defaultdict(list)
        for ep in entry_points:
            if ep.name in selected:
                dist = ep.dist
                claims[ep.name].append(
                    PluginOrigin(
                        ep.name,
                        ep.value,
                        dist.name if dist is not None else "(unknown)",
                        dist.version if dist is not None else "(unknown)",
                    )
                )
        for name, plugin in self.extras:
            if name in selected:
                claims[name].append(PluginOrigin(name, _module_of(plugin)))
        unique = set()
        for name, origins in claims.items():
            self.origins[name] = origins[0]
            if len(origins) == 1:
                unique.add(name)
                continue
            listed = "; ".join(origin.describe() for origin in origins)
            self.problems[name].append(f"the name {name!r} is registered more than once: {listed}")
        return unique

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        try:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=ep.name)
        except pluggy.PluginValidationError as exc:
            self.problems[ep.name].append(_one_line(exc))
        except Exception as exc:
            self.problems[ep.name].append(f"cannot be loaded: {type(exc).__name__}: {exc}")

    def _register_direct(self, name: str, plugin: object) -> None:
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self.problems[name].append(_one_line(exc))

    def _find_unknown_hooks(self) -> None:
        """pluggy accepts an implementation of a hook nobody specified (it might be
        specified later); :meth:`pluggy.PluginManager.check_pending` would stop at the
        first. Here every such implementation of every plugin is listed."""
        known = ", ".join(sorted(_spec_names(self.pm)))
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:  # a blocked name
                continue
            for caller in self.pm.get_hookcallers(plugin) or ():
                if caller.has_spec():
                    continue
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin and not impl.optionalhook:
                        self.problems[name].append(
                            f"implements {caller.name}(), which is not a field hook "
                            f"(the hooks are: {known})"
                        )

    def _callers(self, plugin: object, everyone: Iterable[object]) -> dict[str, pluggy.HookCaller]:
        others = [other for other in everyone if other is not plugin]
        return {name: self.pm.subset_hook_caller(name, others) for name in _spec_names(self.pm)}

    def _field(
        self,
        name: str,
        plugin: object,
        catalogue: Catalogue,
        callers: Mapping[str, pluggy.HookCaller],
    ) -> Field:
        hooks = tuple(sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ()))
        return Field(
            info=catalogue.info,
            metrics=catalogue.metrics,
            kpis=catalogue.kpis,
            alert_rules=catalogue.alert_rules,
            record_types=catalogue.record_types,
            device_profiles=catalogue.device_profiles,
            origin=self.origins[name],
            hooks=hooks,
            plugin=plugin,
            derive_caller=callers["derive"] if "derive" in hooks else None,
            derive_inputs=self._derive_inputs(name, callers) if "derive_inputs" in hooks else None,
            derivations=_by_source(catalogue.derivations),
        )

    def _derive_inputs(self, name: str, callers: Mapping[str, pluggy.HookCaller]) -> frozenset[str]:
        (declared,) = callers["derive_inputs"]()
        if isinstance(declared, str) or not all(isinstance(item, str) for item in declared):
            raise PluginError(
                name, self.origins[name].describe(), ["derive_inputs() must return metric names"]
            )
        return frozenset(declared)


def _by_source(derivations: Iterable[Derivation]) -> Mapping[str, tuple[Derivation, ...]]:
    grouped: dict[str, list[Derivation]] = defaultdict(list)
    for derivation in derivations:
        grouped[derivation.source].append(derivation)
    return MappingProxyType({source: tuple(items) for source, items in grouped.items()})


def _call(callers: Mapping[str, pluggy.HookCaller], hook: str) -> list[object]:
    return callers[hook]()


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.has_spec()
    )


def _module_of(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _one_line(exc: Exception) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
