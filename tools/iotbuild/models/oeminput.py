"""``OEMInput.xml``, the product image definition (iot-adk-addonkit.md §5), and edits that keep its layout.

Namespace ``http://schemas.microsoft.com/embedded/2004/10/ImageUpdate``, root ``OEMInput``. Parsing collects
every problem of a file and raises them together (``InputErrors``), each with file:line and a hint; every
feature keeps its source line so later checks (unknown IDs, Test vs Retail rules) can point at it.

    oi = parse_oeminput(Path("products/SampleA/TestOEMInput.xml"), env={**os.environ, "BLD_DIR": "/b"})
    oi.release_type is ReleaseType.TEST; [f.id for f in oi.oem_features]; oi.additional_fms[0].path
    add_feature(path, "CUSTOM_CMD", oem=True)      # False if it was already there

Edits are made on the file's text, not by re-serializing a tree: xmlsafe drops comments when it parses and
lxml would rewrite the declaration, attribute layout, BOM and line endings. ``XmlTextDocument`` (in
``iotbuild.xmledit``) maps each parsed element to its exact span in the text, so an edit inserts or removes only
the lines it means to, indented like their neighbours; the result is checked here again before it is written
(atomically).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from lxml import etree

from ..errors import InputError
from ..xmledit import XmlTextDocument
from ..xmlsafe import localname, parse
from .wmxml import ReleaseType  # one closed set for packages and images
from ._issues import Issues

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
_FID_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_VAR_RE = re.compile(r"%([A-Za-z_][A-Za-z0-9_()]*)%")


class BuildType(StrEnum):
    FRE = "fre"
    CHK = "chk"


@dataclass(frozen=True)
class FeatureRef:
    id: str
    line: int = field(compare=False)


@dataclass(frozen=True)
class PathRef:
    """An ``AdditionalFM`` or ``PackageFile``: the text as written and the host path after %VAR% expansion."""
    text: str
    path: Path | None  # None when parsed without an environment
    line: int = field(compare=False)


@dataclass(frozen=True)
class SupportedLanguages:
    user_interface: tuple[str, ...] = ()
    keyboard: tuple[str, ...] = ()
    speech: tuple[str, ...] = ()


@dataclass(frozen=True)
class OEMInput:
    path: Path
    soc: str
    device: str
    release_type: ReleaseType
    build_type: BuildType
    languages: SupportedLanguages
    boot_ui_language: str
    boot_locale: str
    description: str | None = None
    sv: str | None = None
    resolutions: tuple[str, ...] = ()
    additional_fms: tuple[PathRef, ...] = ()
    microsoft_features: tuple[FeatureRef, ...] = ()
    oem_features: tuple[FeatureRef, ...] = ()
    product: str | None = None
    package_files: tuple[PathRef, ...] = ()
    format_dpp: bool | None = None
    exclude_prerelease_features: bool | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)  # element → line

    @property
    def is_retail(self) -> bool:
        return self.release_type is ReleaseType.PRODUCTION

    def features(self, *, oem: bool) -> tuple[FeatureRef, ...]:
        return self.oem_features if oem else self.microsoft_features


# Top-level elements: name → required. The last four are rare (§5) and accepted as they are.
_TOP = {"Description": False, "SOC": True, "SV": False, "Device": True, "ReleaseType": True, "BuildType": True,
        "SupportedLanguages": True, "BootUILanguage": True, "BootLocale": True, "Resolutions": False,
        "AdditionalFMs": False, "Features": False, "Product": False, "PackageFiles": False, "FormatDPP": False,
        "ExcludePrereleaseFeatures": False, "OEMDevicePlatform": False, "UserStoreMapData": False}
_EXAMPLES = {"SOC": "<SOC>RPi2</SOC>", "Device": "<Device>RPi2</Device>",
             "ReleaseType": "<ReleaseType>Test</ReleaseType> (or Production)", "BuildType": "<BuildType>fre</BuildType>",
             "SupportedLanguages": "<SupportedLanguages><UserInterface><Language>en-us</Language></UserInterface>"
                                   "…</SupportedLanguages>",
             "BootUILanguage": "<BootUILanguage>en-us</BootUILanguage>", "BootLocale": "<BootLocale>en-us</BootLocale>"}


def expand_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand ``%NAME%`` like cmd.exe (names are case-insensitive); returns the text and the unknown names."""
    folded = {k.upper(): v for k, v in env.items()}
    unknown: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in env:
            return env[name]
        if name.upper() in folded:
            return folded[name.upper()]
        unknown.append(name)
        return m.group(0)

    return _VAR_RE.sub(sub, text), unknown


def host_path(text: str) -> Path:
    """A kit path (``C:\\…`` or ``%BLD_DIR%\\MergedFMs\\x.xml`` after expansion) as a host path: ``\\`` → ``/``."""
    return Path(text.replace("\\", "/"))


_Ctx = Issues


def _text(el) -> str:
    return (el.text or "").strip()


def _children(el, tag: str, ctx: _Ctx) -> list:
    out = []
    for c in el:
        if not isinstance(c.tag, str):
            continue
        if localname(c) != tag or etree.QName(c).namespace != NS:
            ctx.err(f"unknown element <{localname(c)}> in <{localname(el)}>", c, hint=f"only <{tag}> is allowed here")
            continue
        if not _text(c):
            ctx.err(f"<{tag}> is empty", c, hint=f"write a value, or remove the <{tag}>")
            continue
        out.append(c)
    return out


def _bool(el, ctx: _Ctx) -> bool | None:
    t = _text(el).lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    ctx.err(f"<{localname(el)}> {t!r} is not true or false", el)
    return None


def _paths(el, tag: str, env: Mapping[str, str] | None, ctx: _Ctx) -> list[PathRef]:
    refs = []
    for c in _children(el, tag, ctx):
        text = _text(c)
        path = None
        if env is not None:
            expanded, unknown = expand_env(text, env)
            if unknown:
                ctx.err(f"<{tag}> {text!r} names unknown variable(s) " + ", ".join(f"%{u}%" for u in unknown), c,
                        hint="set the variable in the environment, or use %BLD_DIR%, %AKROOT%, %PKGBLD_DIR% "
                             "or %OEM_NAME%")
            else:
                path = host_path(expanded)
        refs.append(PathRef(text, path, c.sourceline))
    return refs


def _features(el, ctx: _Ctx) -> list[FeatureRef]:
    refs: list[FeatureRef] = []
    seen: dict[str, FeatureRef] = {}
    for c in _children(el, "Feature", ctx):
        fid = _text(c)
        if not _FID_RE.match(fid):
            ctx.err(f"feature ID {fid!r} may only contain letters, digits, '_', '-' and '.'", c)
            continue
        if (first := seen.get(fid.upper())) is not None:
            ctx.err(f"feature {fid} is listed twice in <{localname(el)}> (first at line {first.line})", c,
                    hint="remove one of the two lines")
            continue
        seen[fid.upper()] = ref = FeatureRef(fid, c.sourceline)
        refs.append(ref)
    return refs


def parse_oeminput(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> OEMInput:
    """Read and check an OEMInput.xml; ``env`` expands ``%VAR%`` in AdditionalFM/PackageFile (None: keep text).

    The caller passes the environment plus the build's own names (BLD_DIR, AKROOT, PKGBLD_DIR, OEM_NAME…);
    a name that is not there is an error at its line.
    """
    path = Path(path)
    return from_root(parse(path, what="OEMInput file"), path, env)


def from_root(root: etree._Element, path: Path, env: Mapping[str, str] | None = None) -> OEMInput:
    """:func:`parse_oeminput` on an already parsed root (e.g. an edited ``XmlTextDocument``)."""
    if localname(root) != "OEMInput" or etree.QName(root).namespace != NS:
        hint = (f'add xmlns="{NS}" to <OEMInput>' if localname(root) == "OEMInput"
                else "an OEMInput.xml starts with <OEMInput xmlns=\"" + NS + "\">")
        raise InputError(f"root element <{etree.QName(root).text}> is not <OEMInput xmlns=\"{NS}\">",
                         path=path, line=root.sourceline, hint=hint)
    ctx = _Ctx(path)
    found: dict[str, etree._Element] = {}
    for c in root:
        if not isinstance(c.tag, str):
            continue
        tag = localname(c)
        if etree.QName(c).namespace != NS or tag not in _TOP:
            near = difflib.get_close_matches(tag, list(_TOP), n=1)
            ctx.err(f"unknown element <{tag}> in <OEMInput>", c,
                    hint=f"did you mean <{near[0]}>?" if near else "allowed: " + ", ".join(_TOP))
            continue
        if tag in found:
            ctx.err(f"<{tag}> appears twice (first at line {found[tag].sourceline})", c, hint="keep one")
            continue
        found[tag] = c
    for tag, required in _TOP.items():
        if required and (tag not in found or (tag != "SupportedLanguages" and not _text(found[tag]))):
            where = found.get(tag, root)
            ctx.err(f"<{tag}> is {'empty' if tag in found else 'missing'}", where,
                    hint=f"add {_EXAMPLES[tag]}")

    def text(tag: str) -> str | None:
        return _text(found[tag]) or None if tag in found else None

    release = ReleaseType.TEST
    if (rt := text("ReleaseType")) is not None:
        match = next((r for r in ReleaseType if r.value.lower() == rt.lower()), None)
        if match is None:
            hint = "use Production for a retail image" if rt.lower() == "retail" else "use Test or Production"
            ctx.err(f"<ReleaseType> {rt!r} is not allowed", found["ReleaseType"], hint=hint)
        else:
            release = match
    build = BuildType.FRE
    if (bt := text("BuildType")) is not None:
        if env is not None:
            bt, _ = expand_env(bt, env)
        match_b = next((b for b in BuildType if b.value == bt.lower()), None)
        if match_b is None and not (env is None and _VAR_RE.fullmatch(bt)):
            ctx.err(f"<BuildType> {bt!r} is not allowed", found["BuildType"], hint="use fre (or chk)")
        build = match_b or build

    langs = SupportedLanguages()
    if (sl := found.get("SupportedLanguages")) is not None:
        lists: dict[str, tuple[str, ...]] = {}
        for c in sl:
            if not isinstance(c.tag, str):
                continue
            tag = localname(c)
            if etree.QName(c).namespace != NS or tag not in ("UserInterface", "Keyboard", "Speech"):
                ctx.err(f"unknown element <{tag}> in <SupportedLanguages>", c,
                        hint="allowed: UserInterface, Keyboard, Speech")
            elif tag in lists:
                ctx.err(f"<{tag}> appears twice in <SupportedLanguages>", c)
            else:
                lists[tag] = tuple(_text(x) for x in _children(c, "Language", ctx))
        if not lists.get("UserInterface"):
            ctx.err("<SupportedLanguages> lists no <UserInterface> language", sl,
                    hint="add <UserInterface><Language>en-us</Language></UserInterface>")
        langs = SupportedLanguages(lists.get("UserInterface", ()), lists.get("Keyboard", ()), lists.get("Speech", ()))

    microsoft: list[FeatureRef] = []
    oem: list[FeatureRef] = []
    if (feats := found.get("Features")) is not None:
        seen_lists: set[str] = set()
        for c in feats:
            if not isinstance(c.tag, str):
                continue
            tag = localname(c)
            if etree.QName(c).namespace != NS or tag not in ("Microsoft", "OEM"):
                ctx.err(f"unknown element <{tag}> in <Features>", c, hint="allowed: Microsoft, OEM")
            elif tag in seen_lists:
                ctx.err(f"<{tag}> appears twice in <Features>", c, hint="merge the two lists")
            else:
                seen_lists.add(tag)
                (oem if tag == "OEM" else microsoft).extend(_features(c, ctx))

    fms = _paths(found["AdditionalFMs"], "AdditionalFM", env, ctx) if "AdditionalFMs" in found else []
    pkgs = _paths(found["PackageFiles"], "PackageFile", env, ctx) if "PackageFiles" in found else []
    resolutions = tuple(_text(c) for c in _children(found["Resolutions"], "Resolution", ctx)) \
        if "Resolutions" in found else ()
    format_dpp = _bool(found["FormatDPP"], ctx) if "FormatDPP" in found else None
    exclude = _bool(found["ExcludePrereleaseFeatures"], ctx) if "ExcludePrereleaseFeatures" in found else None

    ctx.raise_if_any()
    return OEMInput(path=path, soc=text("SOC") or "", device=text("Device") or "", release_type=release,
                    build_type=build, languages=langs, boot_ui_language=text("BootUILanguage") or "",
                    boot_locale=text("BootLocale") or "", description=text("Description"), sv=text("SV"),
                    resolutions=resolutions, additional_fms=tuple(fms), microsoft_features=tuple(microsoft),
                    oem_features=tuple(oem), product=text("Product"), package_files=tuple(pkgs),
                    format_dpp=format_dpp, exclude_prerelease_features=exclude,
                    lines={t: e.sourceline for t, e in found.items()})


# --------------------------------------------------------------------------------------------------------------
# Feature edits, on the file's text (iotbuild.xmledit)
# --------------------------------------------------------------------------------------------------------------

def _feature_list(doc: XmlTextDocument, *, oem: bool, create: bool):
    """The ``Features/OEM`` (or ``Microsoft``) element, created (in schema order) when ``create`` is set."""
    tag = "OEM" if oem else "Microsoft"
    if doc.child(doc.root, "Features") is None:
        if not create:
            return None
        after = doc.child(doc.root, "Product")
        doc.insert_child(doc.root, [(0, "<Features>"), (1, f"<{tag}>"), (1, f"</{tag}>"), (0, "</Features>")],
                         before=after if after is not None else doc.child(doc.root, "PackageFiles"))
    feats = doc.child(doc.root, "Features")  # every edit re-parses: fetch elements again after one
    if doc.child(feats, tag) is None and create:
        doc.insert_child(feats, [(0, f"<{tag}>"), (0, f"</{tag}>")],
                         before=None if oem else doc.child(feats, "OEM"))
        feats = doc.child(doc.root, "Features")
    return doc.child(feats, tag)


def _check_fid(fid: str) -> None:
    if not _FID_RE.match(fid):
        raise InputError(f"feature ID {fid!r} may only contain letters, digits, '_', '-' and '.'",
                         hint="e.g. CUSTOM_CMD or IOT_SSH")


def add_feature(path: str | os.PathLike[str], fid: str, *, oem: bool) -> bool:
    """Add ``<Feature>fid</Feature>`` to Features/OEM (or Microsoft); False if it is already listed there."""
    _check_fid(fid)
    current = parse_oeminput(path)
    if any(f.id.upper() == fid.upper() for f in current.features(oem=oem)):
        return False
    doc = XmlTextDocument.load(path, what="OEMInput file")
    lst = _feature_list(doc, oem=oem, create=True)
    doc.insert_child(lst, [(0, f"<Feature>{fid}</Feature>")])
    from_root(doc.root, doc.path)
    doc.save()
    return True


def remove_feature(path: str | os.PathLike[str], fid: str, *, oem: bool) -> bool:
    """Remove ``fid`` from Features/OEM (or Microsoft); False if it was not listed there."""
    _check_fid(fid)
    parse_oeminput(path)
    doc = XmlTextDocument.load(path, what="OEMInput file")
    lst = _feature_list(doc, oem=oem, create=False)
    hit = next((c for c in (lst if lst is not None else []) if isinstance(c.tag, str)
                and localname(c) == "Feature" and _text(c).upper() == fid.upper()), None)
    if hit is None:
        return False
    doc.remove(hit)
    from_root(doc.root, doc.path)
    doc.save()
    return True
