"""The settings catalog (``iotbuild/data/settings_catalog.json``): answer-file setting → compiled CSP form.

Microsoft keeps this table in the settings store (``Microsoft-*-Provisioning.dat``), whose format is
undocumented (provisioning-ppkg.md §0 item 2, §5.3), so iotbuild ships its own, one entry per setting, each
citing the public page it was taken from and saying whether the compiled form was *observed* in a real
package, read from a CSP page (*doc*) or *inferred*. Adding a setting is adding an entry; no code changes.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources

from ...errors import InputError
from ...models.customizations import Setting

DATATYPES = ("integer", "boolean", "string")
_TEMPLATE = re.compile(r"\{(#?)([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class CatalogEntry:
    path: str
    csp: str
    parm: str
    type: str
    doc: str
    evidence: str
    values: dict[str, str] | None = None
    group: str = ""
    asset: str = ""
    value: str = "{value}"
    max_length: int | None = None
    note: str = ""
    _lower_values: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def group_template(self) -> str:
        return self.group or self.path

    def convert(self, setting: Setting) -> str:
        """The CSP value for the setting's answer-file value; :class:`InputError` says what is allowed."""
        raw = setting.value
        if self.max_length is not None and "%" not in raw and len(raw) > self.max_length:
            raise InputError(f"{setting.schema_path}: {raw!r} is longer than {self.max_length} characters",
                             line=setting.line, hint=f"shorten it to at most {self.max_length} characters")
        if self.values is not None:
            hit = self._lower_values.get(raw.lower())
            if hit is not None:
                return hit
            if raw in self.values.values():
                return raw
            allowed = ", ".join(f"{k} ({v})" for k, v in self.values.items())
            raise InputError(f"{setting.schema_path}: value {raw!r} is not allowed", line=setting.line,
                             hint=f"use one of {allowed}")
        if self.type == "boolean":
            if raw.lower() in ("true", "false"):
                return raw.lower()
            raise InputError(f"{setting.schema_path}: {raw!r} is not a boolean", line=setting.line,
                             hint="write True or False")
        if self.type == "integer":
            if re.fullmatch(r"-?\d+", raw):
                return str(int(raw))
            raise InputError(f"{setting.schema_path}: {raw!r} is not an integer", line=setting.line,
                             hint="write a decimal number, e.g. 0")
        return raw


def expand(template: str, setting: Setting, *, package_id: str = "", value: str = "") -> str:
    """Fill ``{Elem}`` (key of list item Elem), ``{#Elem}`` (its position), ``{PackageID}``, ``{value}``."""
    def sub(m: re.Match[str]) -> str:
        ordinal, name = m.group(1), m.group(2)
        if not ordinal and name == "PackageID":
            return package_id
        if not ordinal and name == "value":
            return value
        seg = setting.segment(name)
        if seg is None:
            raise AssertionError(f"catalog template {template!r} names {name}, not in {setting.schema_path}")
        return str(seg.ordinal) if ordinal else seg.key_value()
    return _TEMPLATE.sub(sub, template)


@dataclass(frozen=True)
class SettingsCatalog:
    entries: dict[str, CatalogEntry]

    def get(self, schema_path: str) -> CatalogEntry | None:
        return self.entries.get(schema_path)

    def __len__(self) -> int:
        return len(self.entries)


@functools.cache
def load_catalog() -> SettingsCatalog:
    """The shipped catalog, checked once: a broken entry is a bug in iotbuild, so it raises ValueError."""
    text = resources.files("iotbuild").joinpath("data/settings_catalog.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    entries: dict[str, CatalogEntry] = {}
    for raw in doc["settings"]:
        e = CatalogEntry(**raw)
        if e.type not in DATATYPES:
            raise ValueError(f"settings catalog: {e.path}: type {e.type!r}")
        if not e.doc.startswith("https://"):
            raise ValueError(f"settings catalog: {e.path}: no documentation page")
        if e.evidence not in ("observed", "doc", "inferred"):
            raise ValueError(f"settings catalog: {e.path}: evidence {e.evidence!r}")
        if bool(e.asset) == bool(e.csp):
            raise ValueError(f"settings catalog: {e.path}: give exactly one of csp and asset")
        if e.path in entries:
            raise ValueError(f"settings catalog: {e.path} twice")
        if e.values:
            object.__setattr__(e, "_lower_values", {k.lower(): v for k, v in e.values.items()})
        entries[e.path] = e
    return SettingsCatalog(entries)
