"""``customizations.xml``, the Windows provisioning answer file, read into dataclasses with file:line on everything.

Reference: provisioning-ppkg.md §2 (skeleton, PackageConfig, setting trees) and §3 (multivariant: conditions,
matching types, AND/OR logic). What this module checks, and why:

* the root is ``WindowsCustomizations`` or Microsoft's own misspelling ``WindowsCustomizatons`` (§2.1: the
  2017 multivariant doc and Windows' power component write it, so ICD must accept it);
* ``PackageConfig``: ID a GUID with or without braces, Name, Version (1–4 dot-separated integers), OwnerType
  with the exact spellings of the six owner types, Rank 0–99 (default 0);
* ``Targets/Target/TargetState/Condition``: unique Target Ids, a Condition value that parses (``Pattern:``
  compiles as a regex, ``Range:``/``!Range:`` are two integers low ≤ high), one Condition per name in a
  TargetState (the compiler turns them into XML attributes); an unknown condition name is a warning;
* ``Variant/TargetRefs/TargetRef`` + ``Settings``: every TargetRef names a declared Target;
* setting trees become :class:`Setting` leaves with their answer-file path (list items keep their key
  attributes, e.g. ``Accounts/Users/User[UserName=x]/Password``); a setting given twice in one section is an
  error (which value was meant?).

Every problem in the file is collected and raised at once (:class:`~iotbuild.errors.InputErrors`).
``strict=False`` (reading a package someone else built, for ``ppkg.info``/``ppkg.resolve``) turns problems
that do not stop the reading into warnings and accepts COSA ``Profile``/``Replace`` sections.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import InputError, InputErrors
from ..xmlsafe import localname, parse_bytes

PACKAGE_CONFIG_NS = "urn:schemas-Microsoft-com:Windows-ICD-Package-Config.v1.0"
PROVISIONING_NS = "urn:schemas-microsoft-com:windows-provisioning"
ROOT_NAME = "WindowsCustomizations"
ROOT_MISSPELLED = "WindowsCustomizatons"  # sic: Microsoft's 2017 docs and power component (§2.1)


class OwnerType(enum.StrEnum):
    """Owner types lowest → highest precedence (provisioning-how-it-works.md; §4). The value is the XML token."""

    MICROSOFT = "Microsoft"
    SILICON_VENDOR = "SiliconVendor"
    OEM = "OEM"
    SYSTEM_INTEGRATOR = "SystemIntegrator"
    MOBILE_OPERATOR = "MobileOperator"
    IT_ADMIN = "ITAdmin"

    @property
    def index(self) -> int:
        return list(OwnerType).index(self)


class Priority(enum.IntEnum):
    """Condition priority classes of the multivariant table (§3.1). NONE: not a device condition or unknown."""

    NONE = 0
    P1 = 1
    P0 = 2


# §3.1, current table (commit 007d75d) plus IMSI (Microsoft's COSA package matches SIMs by IMSI ranges the
# way it matches ICCID: treated as P0, [inferred]) and ROMLANG (January 2017 draft, P1).
CONDITION_PRIORITY: dict[str, Priority] = {
    **{n.lower(): Priority.P0 for n in ("MNC", "MCC", "SPN", "PNN", "GID1", "ICCID", "IMSI", "Roaming", "UICC",
                                        "UICCSLOT")},
    **{n.lower(): Priority.P1 for n in ("ProcessorType", "ProcessorName", "AoAc", "PowerPlatformRole",
                                        "SocIdentifier", "Architecture", "Server", "Region", "Lang", "ROMLANG")},
}
# Pseudo-conditions on COSA profiles: display name and order, never matched against the device (§3.1).
PSEUDO_CONDITIONS = frozenset({"uiname", "uiorder"})
KNOWN_CONDITIONS = {**{k: k for k in CONDITION_PRIORITY}, **{k: k for k in PSEUDO_CONDITIONS}}
CANONICAL_CONDITION_NAMES = ("MNC", "MCC", "SPN", "PNN", "GID1", "ICCID", "IMSI", "Roaming", "UICC", "UICCSLOT",
                             "ProcessorType", "ProcessorName", "AoAc", "PowerPlatformRole", "SocIdentifier",
                             "Architecture", "Server", "Region", "Lang", "ROMLANG")

_GUID_RE = re.compile(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$")
_VERSION_RE = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
_NAME_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_RANGE_RE = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*$")


class MatchKind(enum.StrEnum):
    STRAIGHT = "straight"
    PATTERN = "pattern"       # Pattern:<regex>, anchored full match, case-sensitive (§3.2, inferred)
    RANGE = "range"           # Range:low,high inclusive, arbitrary-precision integers
    NOT_RANGE = "not-range"   # !Range:low,high, meaning undocumented (§3.2): see resolve.NotRange


@dataclass(frozen=True)
class Condition:
    """``<Condition Name= Value=>`` with its value already parsed (bad regex / bad range fail at load time)."""

    name: str
    value: str
    kind: MatchKind
    line: int | None = field(default=None, compare=False)
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    low: int | None = None
    high: int | None = None

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def priority(self) -> Priority:
        return CONDITION_PRIORITY.get(self.key, Priority.NONE)

    @property
    def is_pseudo(self) -> bool:
        return self.key in PSEUDO_CONDITIONS


@dataclass(frozen=True)
class TargetState:
    """All conditions must hold (AND, §3.3). ``order``: position among every TargetState of the file."""

    target_id: str
    index: int                      # position inside its Target
    conditions: tuple[Condition, ...]
    order: int = 0
    line: int | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.target_id}#{self.index}"

    def describe(self) -> str:
        return " AND ".join(f"{c.name}={c.value}" for c in self.conditions) or "(no condition)"


@dataclass(frozen=True)
class Target:
    """True when any of its TargetStates is true (OR, §3.3)."""

    id: str
    states: tuple[TargetState, ...]
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PathSegment:
    """One element of a setting path. ``keys``: the list-item key attributes; ``ordinal``: position among the
    parent's children of the same name (the ``0``/``1`` of ``Command/0/CommandFile``)."""

    name: str
    keys: tuple[tuple[str, str], ...] = ()
    ordinal: int = 0

    def text(self) -> str:
        return self.name + "".join(f"[{k}={v}]" for k, v in self.keys)

    def key_value(self) -> str:
        """The value that identifies the list item: the first non-``Name`` key, else ``Name``."""
        for k, v in self.keys:
            if k != "Name":
                return v
        return self.keys[0][1] if self.keys else ""


@dataclass(frozen=True)
class Setting:
    """A leaf of a setting tree: ``Policies/ApplicationManagement/AllowAllTrustedApps`` = ``Yes``."""

    segments: tuple[PathSegment, ...]
    value: str
    line: int | None = field(default=None, compare=False)

    @property
    def schema_path(self) -> str:
        """The path without list keys: what the settings catalog is keyed by."""
        return "/".join(s.name for s in self.segments)

    @property
    def path(self) -> str:
        """The identity of the setting: the path with list keys (§4.1 step 6)."""
        return "/".join(s.text() for s in self.segments)

    def segment(self, name: str) -> PathSegment | None:
        for s in self.segments:
            if s.name == name:
                return s
        return None


class SectionKind(enum.StrEnum):
    COMMON = "Common"
    VARIANT = "Variant"
    PROFILE = "Profile"   # COSA (read, never built)


@dataclass(frozen=True)
class Section:
    """``Common`` or one ``Variant`` (``target_refs`` empty for Common)."""

    kind: SectionKind
    index: int
    settings: tuple[Setting, ...]
    target_refs: tuple[str, ...] = ()
    name: str = ""
    line: int | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        if self.kind is SectionKind.COMMON:
            return "Common"
        return f"{self.kind.value} {self.name or self.index}"


@dataclass(frozen=True)
class PackageConfig:
    id: uuid.UUID
    id_text: str
    name: str
    version: str
    owner_type: OwnerType
    rank: int = 0
    description: str = ""
    notes: str = ""
    line: int | None = field(default=None, compare=False)

    @property
    def braced_id(self) -> str:
        return "{" + str(self.id) + "}"

    @property
    def altitude(self) -> int:
        """``1000 × owner index + rank``: Microsoft/0 → 0 and OEM/0 → 2000 observed (§0 item 4, inferred)."""
        return 1000 * self.owner_type.index + self.rank


@dataclass(frozen=True)
class Customizations:
    path: Path
    root_name: str
    package: PackageConfig
    common: Section | None
    targets: dict[str, Target]
    variants: tuple[Section, ...]
    warnings: tuple[InputError, ...] = ()
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def sections(self) -> tuple[Section, ...]:
        return ((self.common,) if self.common else ()) + self.variants

    def all_settings(self) -> Iterator[tuple[Section, Setting]]:
        for section in self.sections:
            for s in section.settings:
                yield section, s

    def states_of(self, section: Section) -> Iterator[TargetState]:
        """Every TargetState a Variant applies under, in TargetRef order (the compiler's entry order, §1.3)."""
        for ref in section.target_refs:
            target = self.targets.get(ref)
            if target is not None:
                yield from target.states


def parse_condition_value(name: str, value: str, *, path: Path, line: int | None) -> Condition:
    """Straight match, ``Pattern:``, ``Range:`` or ``!Range:`` (prefixes case-insensitive, §3.2)."""
    lowered = value.lower()
    if lowered.startswith("pattern:"):
        expr = value[len("pattern:"):]
        try:
            compiled = re.compile(expr)
        except re.error as e:
            raise InputError(f"Condition {name}: Pattern {expr!r} is not a valid regular expression ({e.msg})",
                             path=path, line=line,
                             hint="fix the regex, e.g. Pattern:.*Celeron.* (it must match the whole value)") from None
        return Condition(name, value, MatchKind.PATTERN, line, compiled)
    for prefix, kind in (("!range:", MatchKind.NOT_RANGE), ("range:", MatchKind.RANGE)):
        if lowered.startswith(prefix):
            body = value[len(prefix):]
            m = _RANGE_RE.match(body)
            if not m:
                raise InputError(f"Condition {name}: range {body!r} is not two integers 'low, high'",
                                 path=path, line=line, hint=f"write e.g. {value[:len(prefix)]}310, 320")
            low, high = int(m.group(1)), int(m.group(2))
            if low > high:
                raise InputError(f"Condition {name}: range {low}, {high} is empty (low > high)", path=path,
                                 line=line, hint=f"swap the bounds: {value[:len(prefix)]}{high}, {low}")
            return Condition(name, value, kind, line, None, low, high)
    return Condition(name, value, MatchKind.STRAIGHT, line)


class _Collector:
    def __init__(self, path: Path, strict: bool) -> None:
        self.path, self.strict = path, strict
        self.errors: list[InputError] = []
        self.warnings: list[InputError] = []

    def error(self, what: str, el: etree._Element | None, hint: str, *, soft: bool = False) -> None:
        """``soft``: a problem that does not stop reading; a warning when reading someone else's package."""
        e = InputError(what, path=self.path, line=getattr(el, "sourceline", None), hint=hint)
        (self.warnings if soft and not self.strict else self.errors).append(e)

    def warn(self, what: str, el: etree._Element | None, hint: str) -> None:
        self.warnings.append(InputError(what, path=self.path, line=getattr(el, "sourceline", None), hint=hint))


def load_customizations(path: str | Path, *, strict: bool = True) -> Customizations:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("customizations.xml not found", path=path,
                         hint="give the path of a customizations.xml or a product name") from None
    except OSError as e:
        raise InputError(f"cannot read the answer file: {e.strerror}", path=path) from None
    return parse_customizations(data, path=path, strict=strict)


def parse_customizations(data: bytes, *, path: str | Path, strict: bool = True) -> Customizations:
    path = Path(path)
    root = parse_bytes(data, path=path, what="answer file")
    c = _Collector(path, strict)
    name = localname(root)
    if name not in (ROOT_NAME, ROOT_MISSPELLED):
        raise InputError(f"root element is <{name}>, expected <{ROOT_NAME}>", path=path, line=root.sourceline,
                         hint="a provisioning answer file starts with <WindowsCustomizations>")
    pc_el = _child(root, "PackageConfig")
    settings_el = _child(root, "Settings")
    for el in _elements(root):
        if localname(el) not in ("PackageConfig", "Settings"):
            c.error(f"unknown element <{localname(el)}> under <{name}>", el,
                    "only <PackageConfig> and <Settings> belong here", soft=True)
    if pc_el is None:
        raise InputError("<PackageConfig> is missing", path=path, line=root.sourceline,
                         hint=f'add <PackageConfig xmlns="{PACKAGE_CONFIG_NS}"> with ID, Name, Version, OwnerType')
    package = _package_config(pc_el, c)
    common: Section | None = None
    targets: dict[str, Target] = {}
    variants: list[Section] = []
    if settings_el is None:
        c.error("<Settings> is missing", root, f'add <Settings xmlns="{PROVISIONING_NS}"><Customizations>…',
                soft=True)
    else:
        if settings_el.tag != f"{{{PROVISIONING_NS}}}Settings":
            c.error(f"<Settings> must be in the namespace {PROVISIONING_NS}", settings_el,
                    f'write <Settings xmlns="{PROVISIONING_NS}">', soft=True)
        cust = _child(settings_el, "Customizations")
        if cust is None:
            c.error("<Customizations> is missing under <Settings>", settings_el,
                    "put <Common>, <Targets> and <Variant> inside <Settings><Customizations>")
        else:
            common, targets, variants = _customizations(cust, c)
    if c.errors:
        raise InputErrors(c.errors)
    assert package is not None
    return Customizations(path=path, root_name=name, package=package, common=common, targets=targets,
                          variants=tuple(variants), warnings=tuple(c.warnings), raw=data)


def _elements(el: etree._Element) -> list[etree._Element]:
    return [x for x in el if isinstance(x.tag, str)]


def _child(el: etree._Element, name: str) -> etree._Element | None:
    return next((x for x in _elements(el) if localname(x) == name), None)


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


_PC_FIELDS = ("ID", "Name", "Description", "Version", "OwnerType", "Rank", "Notes")


def _package_config(el: etree._Element, c: _Collector) -> PackageConfig | None:
    if el.tag != f"{{{PACKAGE_CONFIG_NS}}}PackageConfig":
        c.error(f"<PackageConfig> must be in the namespace {PACKAGE_CONFIG_NS}", el,
                f'write <PackageConfig xmlns="{PACKAGE_CONFIG_NS}"> (capital M in Microsoft)', soft=True)
    fields: dict[str, etree._Element] = {}
    for x in _elements(el):
        n = localname(x)
        if n not in _PC_FIELDS:
            c.error(f"unknown element <{n}> in <PackageConfig>", x, "allowed: " + ", ".join(_PC_FIELDS), soft=True)
        elif n in fields:
            c.error(f"<{n}> is given twice in <PackageConfig>", x, "keep one")
        else:
            fields[n] = x
    ok = True

    def required(n: str, hint: str) -> str:
        nonlocal ok
        v = _text(fields.get(n))
        if not v:
            c.error(f"<PackageConfig> has no <{n}>", fields.get(n, el), hint)
            ok = False
        return v

    id_text = required("ID", "add <ID>{a GUID}</ID>, e.g. from uuidgen")
    guid = uuid.UUID(int=0)
    if id_text:
        m = _GUID_RE.match(id_text)
        if not m:
            c.error(f"package ID {id_text!r} is not a GUID", fields["ID"],
                    "write a GUID such as {bbbc2321-fe88-4f21-8d5f-14928041cec2} (braces optional)")
            ok = False
        else:
            guid = uuid.UUID(m.group(1))
    pkg_name = required("Name", "add <Name>MyPackage</Name>; it names the .ppkg")
    if pkg_name and _NAME_BAD.search(pkg_name):
        c.error(f"package Name {pkg_name!r} cannot be a file name", fields["Name"],
                'leave out < > : " / \\ | ? * and control characters')
        ok = False
    version = required("Version", "add <Version>1.0.0.0</Version>")
    if version and (not _VERSION_RE.match(version) or any(int(p) > 65535 for p in version.split("."))):
        c.error(f"Version {version!r} is not 1 to 4 dot-separated integers (each 0–65535)", fields["Version"],
                "write e.g. 1.0 or 1.0.0.0")
        ok = False
    owner_text = required("OwnerType", "add <OwnerType>OEM</OwnerType>")
    owner = OwnerType.OEM
    if owner_text:
        try:
            owner = OwnerType(owner_text)
        except ValueError:
            close = next((o.value for o in OwnerType if o.value.lower() == owner_text.replace(" ", "").lower()), None)
            c.error(f"unknown OwnerType {owner_text!r}", fields["OwnerType"],
                    (f"write {close} (exact spelling)" if close else "use one of "
                     + ", ".join(o.value for o in OwnerType)))
            ok = False
    rank = 0
    rank_text = _text(fields.get("Rank"))
    if rank_text:
        if not re.fullmatch(r"-?\d+", rank_text) or not 0 <= int(rank_text) <= 99:
            c.error(f"Rank {rank_text!r} is out of range", fields["Rank"], "use an integer from 0 to 99 (default 0)")
            ok = False
        else:
            rank = int(rank_text)
    if not ok:
        return None
    return PackageConfig(id=guid, id_text=id_text, name=pkg_name, version=version, owner_type=owner, rank=rank,
                         description=_text(fields.get("Description")), notes=_text(fields.get("Notes")),
                         line=el.sourceline)


def _customizations(cust: etree._Element, c: _Collector
                    ) -> tuple[Section | None, dict[str, Target], list[Section]]:
    common: Section | None = None
    targets: dict[str, Target] = {}
    target_lines: dict[str, int | None] = {}
    pending_variants: list[etree._Element] = []
    state_order = 0
    for el in _elements(cust):
        n = localname(el)
        if n == "Common":
            if common is not None:
                c.error("<Common> is given twice", el, "merge the two <Common> sections")
                continue
            common = Section(SectionKind.COMMON, 0, tuple(_settings(el, c)), line=el.sourceline)
        elif n == "Targets":
            for t in _elements(el):
                if localname(t) != "Target":
                    c.error(f"unknown element <{localname(t)}> in <Targets>", t, "only <Target> belongs here")
                    continue
                tid = (t.get("Id") or "").strip()
                if not tid:
                    c.error("<Target> has no Id", t, 'add Id="…" (Variants refer to it by <TargetRef Id="…"/>)')
                    continue
                if tid in targets or tid in target_lines:
                    c.error(f"Target Id {tid!r} is declared twice (first at line {target_lines[tid]})", t,
                            "give each Target its own Id")
                    continue
                target_lines[tid] = t.sourceline
                states = []
                for s in _elements(t):
                    if localname(s) != "TargetState":
                        c.error(f"unknown element <{localname(s)}> in <Target>", s, "only <TargetState> belongs here")
                        continue
                    conds = _conditions(s, c)
                    states.append(TargetState(tid, len(states), tuple(conds), state_order, s.sourceline))
                    state_order += 1
                if not states:
                    c.error(f"Target {tid!r} has no <TargetState>", t,
                            "add <TargetState><Condition Name=\"…\" Value=\"…\"/></TargetState>")
                targets[tid] = Target(tid, tuple(states), t.sourceline)
        elif n in ("Variant", "Profile", "Replace"):
            if n != "Variant":
                c.error(f"<{n}> (a COSA profile) is not supported", el,
                        "use <Variant> with <TargetRefs> and <Settings>", soft=True)
            pending_variants.append(el)
        else:
            c.error(f"unknown element <{n}> in <Customizations>", el,
                    "allowed: <Common>, <Targets>, <Variant>")
    variants = []
    for el in pending_variants:
        kind = SectionKind.VARIANT if localname(el) == "Variant" else SectionKind.PROFILE
        refs: list[str] = []
        settings: list[Setting] = []
        seen_settings = False
        for x in _elements(el):
            n = localname(x)
            if n == "TargetRefs":
                for r in _elements(x):
                    rid = (r.get("Id") or "").strip() if localname(r) == "TargetRef" else ""
                    if localname(r) != "TargetRef":
                        c.error(f"unknown element <{localname(r)}> in <TargetRefs>", r, "only <TargetRef Id=\"…\"/>")
                    elif not rid:
                        c.error("<TargetRef> has no Id", r, 'write <TargetRef Id="…"/> naming a declared <Target>')
                    elif rid not in targets:
                        known = ", ".join(sorted(targets)) or "none declared"
                        c.error(f"TargetRef {rid!r} names no declared Target", r,
                                f"declare <Target Id=\"{rid}\"> under <Targets> (declared: {known})")
                    else:
                        refs.append(rid)
            elif n == "Settings":
                seen_settings = True
                settings.extend(_settings(x, c))
            elif kind is SectionKind.PROFILE:
                continue
            else:
                c.error(f"unknown element <{n}> in <Variant>", x,
                        "a Variant holds <TargetRefs> and one <Settings> wrapper around its settings")
        if kind is SectionKind.VARIANT:
            if not refs and not any(localname(x) == "TargetRefs" for x in _elements(el)):
                c.error("<Variant> has no <TargetRefs>", el, 'add <TargetRefs><TargetRef Id="…"/></TargetRefs>')
            if not seen_settings:
                c.error("<Variant> has no <Settings> wrapper", el,
                        "put the Variant's settings inside <Settings>…</Settings>")
        variants.append(Section(kind, len(variants) + 1, tuple(settings), tuple(refs), el.get("Name") or "",
                                el.sourceline))
    return common, targets, variants


def _conditions(state: etree._Element, c: _Collector) -> list[Condition]:
    conds: list[Condition] = []
    seen: dict[str, int | None] = {}
    for x in _elements(state):
        if localname(x) != "Condition":
            c.error(f"unknown element <{localname(x)}> in <TargetState>", x, "only <Condition> belongs here")
            continue
        name, value = (x.get("Name") or "").strip(), x.get("Value")
        if not name:
            c.error("<Condition> has no Name", x, 'write <Condition Name="MCC" Value="310"/>')
            continue
        if value is None:
            c.error(f"<Condition Name=\"{name}\"> has no Value", x, 'add Value="…"')
            continue
        if not _NCNAME.match(name):
            c.error(f"condition name {name!r} is not a valid name", x,
                    "use letters, digits and _ (the name becomes an XML attribute in the package)")
            continue
        if name.lower() in seen:
            c.error(f"condition {name!r} appears twice in one TargetState (first at line {seen[name.lower()]})", x,
                    "a TargetState is an AND of distinct conditions: keep one, or make a second TargetState (OR)")
            continue
        seen[name.lower()] = x.sourceline
        try:
            cond = parse_condition_value(name, value, path=c.path, line=x.sourceline)
        except InputError as e:
            c.errors.append(e)
            continue
        if name.lower() not in KNOWN_CONDITIONS:
            c.warn(f"unknown condition name {name!r}", x,
                   "known names: " + ", ".join(CANONICAL_CONDITION_NAMES) + "; it is matched against a device "
                   "fact of that name and has no priority")
        if cond.kind is MatchKind.NOT_RANGE:
            c.warn(f"condition {name}: the meaning of '!Range:' is undocumented", x,
                   "prefer Range: (the simulator reads !Range: as 'outside the range' unless told otherwise)")
        conds.append(cond)
    if not conds and not any(localname(x) == "Condition" for x in _elements(state)):
        c.error("<TargetState> has no <Condition>", state,
                'add <Condition Name="…" Value="…"/> (an empty TargetState would match every device)')
    return conds


def _settings(container: etree._Element, c: _Collector) -> list[Setting]:
    out: list[Setting] = []
    seen: dict[str, int | None] = {}

    def walk(el: etree._Element, prefix: tuple[PathSegment, ...]) -> None:
        counts: dict[str, int] = {}
        for x in _elements(el):
            n = localname(x)
            ordinal = counts.get(n, 0)
            counts[n] = ordinal + 1
            keys = tuple((k, v) for k, v in x.attrib.items() if "}" not in k)
            seg = PathSegment(n, keys, ordinal)
            children = _elements(x)
            if children:
                if (x.text or "").strip():
                    c.error(f"<{n}> has both a value and child settings", x,
                            "a setting is either a group of settings or a value, not both")
                walk(x, (*prefix, seg))
                continue
            setting = Setting((*prefix, seg), (x.text or "").strip(), x.sourceline)
            if setting.path in seen:
                c.error(f"setting {setting.path} is given twice in this section (first at line {seen[setting.path]})",
                        x, "keep one value; a list item needs its own key attribute (e.g. Name=\"…\")", soft=True)
                continue
            seen[setting.path] = x.sourceline
            out.append(setting)

    walk(container, ())
    return out
