"""The JSON Schema of each document kind, for editors (completion, hover, typos
underlined) and for CI validators.

Generated from the pydantic models, then shaped for a person typing YAML:

- every field's description is its ``Field(description=...)`` (the one source; a
  model's docstring describes the object), and its title is words (``API version``,
  not ``Apiversion``);
- a default is shown as it is written (``"30m"``, not ``1800.0``), so completion
  inserts a value the schema itself accepts;
- plugin names are enums of the installed plugins, and each plugin's ``with:``
  block, source settings and check parameters are its own model's schema, closed
  (``additionalProperties: false``) like the language's objects;
- a policy check is one of a closed object per source (``oneOf``, told apart by its
  ``source`` constant): the common keys plus that source's ``Params``, so ``query``,
  ``targets`` or ``url`` complete, and ``qeury`` is flagged.

A check's ``source:`` may also name a source that a plan declares under another name
(``sources: {thanos: {plugin: prometheus}}``). A policy file alone cannot know those
names, and ``guardrail validate`` on a policy alone accepts only installed source
plugins, so the policy schema does too; ``sources`` (``guardrail schema policy
--source thanos=prometheus``) adds such aliases, each with its plugin's parameters.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from guardrail.language.policy import Check, Policy
from guardrail.language.rollout import Rollout
from guardrail.plugin.manager import Registry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ACRONYMS = {"api": "API", "url": "URL", "tls": "TLS", "ca": "CA", "json": "JSON", "id": "ID", "http": "HTTP",
            "tcp": "TCP", "promql": "PromQL", "sql": "SQL", "ssl": "SSL", "csv": "CSV", "uri": "URI"}

try:  # how pydantic finds the serializer of a default; private, so guarded
    from pydantic.json_schema import _get_ser_schema_for_default_value as _ser_schema
except ImportError:  # pragma: no cover - a pydantic without it shows defaults as Python values
    def _ser_schema(schema: Any) -> Any:
        return schema.get("serialization")


def words(name: str) -> str:
    """A field or model name as a title: ``apiVersion`` → ``API version``,
    ``on_no_data`` → ``On no data``, ``OnFailure`` → ``On failure``."""
    parts = [p for p in re.split(r"_+|(?<=[a-z0-9])(?=[A-Z])", name.strip("_")) if p]
    out = [ACRONYMS.get(p.lower(), p.lower()) for p in parts]
    if out and out[0] == out[0].lower():
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


class _Generator(GenerateJsonSchema):
    """pydantic's generator with word titles and defaults written as in YAML."""

    def get_title_from_name(self, name: str) -> str:
        return words(name)

    def default_schema(self, schema: Any) -> dict:
        json_schema = super().default_schema(schema)
        if "default" not in json_schema:
            return json_schema
        default = self.get_default_value(schema)
        serializer = _ser_schema(schema["schema"])
        function = serializer.get("function") if isinstance(serializer, dict) else None
        if default is not None and function is not None:  # a Duration's 1800.0 is "30m" in YAML
            json_schema["default"] = self.encode_default(function(default))
        return json_schema


def model_schema(model: type[BaseModel]) -> dict:
    """One model's schema, as it reads in YAML (aliases, word titles, written defaults)."""
    schema = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    for definition in schema.get("$defs", {}).values():
        if "title" in definition:
            definition["title"] = words(definition["title"])
    return schema


def document_kinds(registry: Registry) -> dict[str, type[BaseModel]]:
    """Every document kind with a schema: the language's own, then those plugins register."""
    models: dict[str, type[BaseModel]] = {"rollout": Rollout, "policy": Policy}
    for name, registered in registry.document_kinds.items():
        if registered.schema is not None:
            models.setdefault(name.lower(), registered.schema)
    return models


def document_schema(kind: str, registry: Registry, *, sources: dict[str, str] | None = None) -> dict:
    """The JSON Schema of documents of ``kind`` (``rollout``, ``policy``, or a kind a
    plugin registers), with the installed plugins' names and settings.

    :param sources: for ``policy``: extra source names a check may use, each mapped to
        the source plugin whose parameters it takes (a plan's ``sources:`` aliases).
    :raises KeyError: for a kind nobody registered.
    """
    model = document_kinds(registry)[kind.lower()]
    if model is Policy:
        schema = _policy(registry, sources or {})
    elif model is Rollout:
        schema = _rollout(registry)
    else:
        schema = model_schema(model)
    schema["$schema"] = DIALECT
    schema["title"] = f"guardrail {model.__name__}"
    return schema


class _Defs:
    """The ``$defs`` of the document being built: plugin models' schemas move in under
    names of their own, so two plugins' ``Settings`` never collide."""

    def __init__(self, defs: dict):
        self.defs = defs

    def add(self, name: str, schema: dict) -> dict:
        """Move ``schema`` (a model's whole schema) in as ``name``; a ``$ref`` to it."""
        schema = copy.deepcopy(schema)
        inner = schema.pop("$defs", {})
        renames = {key: f"{name}.{key}" for key in inner}
        for key, definition in inner.items():
            self.defs[renames[key]] = _renamed(definition, renames)
        self.defs[name] = _renamed(schema, renames)
        return {"$ref": f"#/$defs/{name}"}

    def get(self, ref: dict) -> dict:
        return self.defs[ref["$ref"].rsplit("/", 1)[-1]]


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _renamed(v, renames) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in renames:
            out["$ref"] = "#/$defs/" + renames[ref[8:]]
        return out
    if isinstance(node, list):
        return [_renamed(v, renames) for v in node]
    return node


def _open(description: str) -> dict:
    return {"type": "object", "description": description}


def _settings(defs: _Defs, registry: Registry, kind: str, name: str) -> dict:
    """A ``$ref`` to the schema of plugin ``name``'s ``Settings`` (its ``with:`` block)."""
    model = getattr(registry.get(kind, name), "Settings", None)
    if model is None:
        return _open(f"settings of {name} (the plugin declares no Settings model)")
    return defs.add(f"{kind}.{name}.settings", model_schema(model))


def _plugin_refs(defs: _Defs, registry: Registry, kind: str, label: str, extra: dict | None = None,
                 use: str | None = None) -> dict:
    """``{plugin: NAME, with: {...}}`` as one closed object per installed plugin of ``kind``;
    ``extra`` keys join ``plugin`` and ``with`` where the reference is used as ``use``."""
    extra = extra or {}
    variants = []
    for name in sorted(getattr(registry, kind)):
        settings = _settings(defs, registry, kind, name)
        required = ["plugin"] + (["with"] if "$ref" in settings and defs.get(settings).get("required") else [])
        variants.append(defs.add(f"{use or kind}.{name}", {
            "title": f"{name} {label}", "type": "object", "additionalProperties": False, "required": required,
            "properties": {"plugin": {"const": name, "title": "Plugin", "description": f"the {name} {label} plugin"},
                           "with": {**settings, "title": "With", "description": f"settings of the {name} plugin"},
                           **extra}}))
    return {"title": words(label), "type": "object", "required": ["plugin"],
            "properties": {"plugin": {"title": "Plugin", "description": f"the {label} plugin to use",
                                      "enum": sorted(getattr(registry, kind))}},
            "oneOf": variants}


def _rollout(registry: Registry) -> dict:
    schema = model_schema(Rollout)
    defs = _Defs(schema["$defs"])
    deployer = defs.add("Deployer", _plugin_refs(defs, registry, "deployers", "deployer"))
    action = defs.add("Action", _plugin_refs(defs, registry, "actions", "action"))
    sink = defs.add("IncidentSink", _plugin_refs(defs, registry, "incident_sinks", "incident sink"))
    notify = schema["$defs"]["Notify"]
    events = notify["properties"]["events"]
    schema["$defs"]["Notify"] = {**_plugin_refs(defs, registry, "incident_sinks", "incident sink",
                                                {"events": events}, use="notify"), "title": notify["title"],
                                 "description": notify["description"]}
    schema["properties"]["deploy"] = {**deployer, "description": schema["properties"]["deploy"].get(
        "description", "the deployer plugin and its settings")}
    on_failure = schema["$defs"]["OnFailure"]["properties"]
    on_failure["actions"]["items"] = action
    on_failure["incident"]["anyOf"] = [sink, {"type": "array", "items": sink}]
    schema["$defs"]["OnRecovery"]["properties"]["actions"]["items"] = action
    del schema["$defs"]["PluginRef"]

    named, by_plugin, overrides = {}, [], {}
    for name in sorted(registry.sources):
        settings = _settings(defs, registry, "sources", name)
        body = defs.get(settings) if "$ref" in settings else None
        closed = body is not None and body.get("additionalProperties") is False
        props = dict(body.get("properties", {})) if body else {}
        plugin = {"const": name, "title": "Plugin", "description": f"the {name} source plugin"}
        own = {"title": f"{name} source", "type": "object", "properties": {**props, "plugin": plugin},
               "required": body.get("required", []) if body else []}
        if closed:
            own["additionalProperties"] = False
        by_plugin.append(defs.add(f"{name}.source", {**own, "required": sorted({"plugin", *own["required"]})}))
        named[name] = {"description": f"settings of the {name} source",
                       "anyOf": [defs.add(f"{name}.source.named", own), {"$ref": "#/$defs/SourceByPlugin"}]}
        overrides[name] = {"title": f"{name} source overrides", "type": "object", "properties": props,
                           "description": f"this region's values of the {name} source's settings",
                           **({"additionalProperties": False} if closed else {})}
    defs.defs["SourceByPlugin"] = {"title": "Source", "type": "object", "required": ["plugin"],
                                   "properties": {"plugin": {"title": "Plugin", "enum": sorted(registry.sources),
                                                             "description": "the source plugin this name stands for"}},
                                   "oneOf": by_plugin}
    sources = schema["properties"]["sources"]
    sources.update(properties=named, additionalProperties={"$ref": "#/$defs/SourceByPlugin"})
    region_sources = schema["$defs"]["Region"]["properties"]["sources"]
    region_sources.update(properties=overrides, additionalProperties=_open(
        "overrides of a source the plan declares under a name of its own"))
    _secrets_allowed(schema)
    return schema


ENV_REFERENCE = r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}"


def _secrets_allowed(node: Any) -> None:
    """A plan's strings may be ``${env:NAME}``, filled in when it loads (a webhook URL
    from a secret): a pattern such as ``^https?://`` accepts that too."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            node["pattern"] = f"(?:{node['pattern']})|{ENV_REFERENCE}"
        for value in node.values():
            _secrets_allowed(value)
    elif isinstance(node, list):
        for value in node:
            _secrets_allowed(value)


RELATIVE = r"^\s*(>=|<=|==|!=|>|<)\s*([+-]|.*%\s*$)"
"""A comparison with a sign or a percent: relative to a reference value."""
_CHECK_RULES = [  # the Check model's own rules that a schema can say, so an editor flags them too
    {"if": {"required": ["fail_if"], "properties": {"fail_if": {"type": "string", "pattern": RELATIVE}}},
     "then": {"required": ["compare"]}},
    {"if": {"required": ["warn_if"], "properties": {"warn_if": {"type": "string", "pattern": RELATIVE}}},
     "then": {"required": ["compare"]}},
    {"if": {"required": ["warn_if"]},
     "then": {"not": {"required": ["mode"], "properties": {"mode": {"const": "warn"}}},
              "properties": {"compare": {"not": {"const": "control"}}}}},
    {"if": {"required": ["baseline"]},
     "then": {"required": ["compare"], "properties": {"compare": {"const": "baseline"}}}},
    {"if": {"required": ["test"]}, "then": {"required": ["compare"], "properties": {"compare": {"const": "control"}}}},
    {"if": {"required": ["on_no_control"]},
     "then": {"required": ["compare"], "properties": {"compare": {"const": "control"}}}},
]


def _policy(registry: Registry, aliases: dict[str, str]) -> dict:
    schema = model_schema(Policy)
    defs = _Defs(schema["$defs"])
    check = schema["$defs"]["Check"]
    names = {name: name for name in registry.sources}
    for alias, plugin in aliases.items():
        registry.get("sources", plugin)  # an unknown plugin: PluginError with suggestions
        names[alias] = plugin
    source = check["properties"]["source"]
    variants = []
    for name, plugin in sorted(names.items()):
        params = getattr(registry.get("sources", plugin), "Params", None)
        body = model_schema(params) if params is not None else {"type": "object", "properties": {}}
        ref = defs.add(f"{name}.check", body)
        body = defs.get(ref)
        own = {k: v for k, v in body.get("properties", {}).items() if k not in check["properties"]}
        body.update(
            title=f"{name} check", type="object",
            properties={**check["properties"], **own,
                        "source": {**source, "const": name, "description": f"the {name} source"
                                   + (f" (plugin {plugin})" if plugin != name else "")}},
            required=sorted({*check.get("required", []), *body.get("required", [])}),
            description=(check.get("description", "") + "\n\n" + (params.__doc__ or "") if params else
                         check.get("description", "")).strip(),
        )
        body["allOf"] = [{"$ref": "#/$defs/CheckRules"}]
        if body.get("additionalProperties") is not False:  # a source without a closed Params checks no keys
            body.pop("additionalProperties", None)
        variants.append(ref)
    schema["$defs"]["CheckRules"] = {"description": "rules between a check's keys", "allOf": _CHECK_RULES}
    schema["$defs"]["Check"] = {
        "title": check["title"], "description": check.get("description", ""), "type": "object",
        "required": ["source"],
        "properties": {**check["properties"], "source": {**source, "enum": sorted(names)}},
        "oneOf": variants,
    }
    return schema
