"""Authoring: new products, BSPs and packages from the kit's templates, and edits of OEMInput.xml and
IoTWorkspace.xml (the commands of iot-adk-addonkit.md §9: newproduct, newbsp, newpkg, inf2pkg, addfid,
removefid, setversion).

Each step writes only new files (never over an existing one) or edits one file in place keeping its layout;
folders are assembled under a hidden ``.<name>.partial-*`` folder and renamed into place at the end, so a
failure leaves nothing half-made. What is written is parsed back with the project's own models first.

A step returns an :class:`Outcome` (paths written and changed, warnings and the facts a summary needs) and
prints nothing: the tasks in ``iotbuild.tasks.author`` turn it into the summary line or ``--json``.

    out = new_package(ws, "Custom.Settings", "MainOS")
    out.written, out.feature_fm, out.warnings
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jinja2
from lxml import etree

from ..errors import InputError
from ..models import oeminput, wmxml
from ..models.inf import parse_inf
from ..models.workspace import Workspace
from ..xmledit import XmlTextDocument
from ..xmlsafe import localname, parse_bytes

PACKAGE_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")
PLAIN_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
FM_CPU = {"arm": "ARM", "x86": "X86", "x64": "AMD64", "arm64": "ARM64"}  # FMFileList CPUType (case-sensitive)
_VERSION_RE = re.compile(r"^\d{1,5}\.\d{1,5}\.\d{1,5}\.\d{1,5}$")

_templates = jinja2.Environment(loader=jinja2.PackageLoader("iotbuild", "templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                undefined=jinja2.StrictUndefined)


def render(template: str, **values: object) -> bytes:
    return _templates.get_template(template).render(**values).encode("utf-8")


# -- where things live (iotbuild layout, or the kit's Common/ + Source-<arch>/) -------------------------------
def common_packages_dir(ws: Workspace) -> Path:
    return ws.root / "Common" / "Packages" if ws.kit_layout else ws.root / "packages"


def arch_packages_dir(ws: Workspace) -> Path:
    return ws.source_dir / "Packages" if ws.kit_layout else ws.root / "packages"


def bsp_dir(ws: Workspace, bsp: str | None = None) -> Path:
    base = ws.source_dir / "BSP" if ws.kit_layout else ws.root / "bsp"
    return base / bsp if bsp else base


def rel(ws: Workspace, p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ws.root.resolve()))
    except ValueError:
        return str(p)


@dataclass
class Outcome:
    """What a step did, as data: files created, files edited, files an edit found already as asked, and
    warnings (problems that did not stop the step, for the user to fix), plus what the summary names."""
    written: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    folder: Path | None = None  # the folder created: the package, BSP or product
    package: str | None = None  # new_package / inf_to_package: the package's name (inf_to_package may default it)
    definition: Path | None = None  # the package's .wm.xml
    source: Path | None = None  # inf_to_package: the INF the package was made from
    feature_id: str | None = None  # the package's feature, when it was added to a feature manifest…
    feature_fm: Path | None = None  # …this one (None: not added, the warnings say why)
    configs: list[str] = field(default_factory=list)  # new_product: Test, Retail, … one per OEMInput
    old_version: str | None = None  # set_version: the BSPVersion before (None: there was none)

    def to_dict(self, ws: Workspace) -> dict[str, object]:
        return {"written": [rel(ws, p) for p in self.written], "changed": [rel(ws, p) for p in self.changed],
                "warnings": self.warnings}


# -- writing without overwriting -------------------------------------------------------------------------------
def create_new(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, refusing to replace a file that exists (a hard link cannot overwrite)."""
    if path.exists():
        raise InputError("already exists; iotbuild never overwrites a file", path=path,
                         hint="choose another name, or delete the file first")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise InputError("already exists; iotbuild never overwrites a file", path=path) from None
        except OSError:  # no hard links on this filesystem: check, then rename
            if path.exists():
                raise InputError("already exists; iotbuild never overwrites a file", path=path) from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A hidden folder beside ``final`` to fill; renamed to ``final`` when the block succeeds, removed if not."""
    if final.exists():
        raise InputError("already exists", path=final, hint="choose another name, or remove the folder first")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        try:
            yield tmp
        except InputError as e:  # name the file where it will be, not the staging folder
            for x in (e, *getattr(e, "errors", ())):
                if x.path and x.path.startswith(str(tmp)):
                    x.path = str(final) + x.path[len(str(tmp)):]
            raise
        if final.exists():
            raise InputError("already exists", path=final, hint="another command created it meanwhile")
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- checks ----------------------------------------------------------------------------------------------------
def check_package_name(name: str) -> tuple[str, str]:
    if not PACKAGE_NAME_RE.match(name):
        raise InputError(f"package name {name!r} is not Namespace.Name",
                         hint="use letters, digits and '_' in two or more parts separated by dots, e.g. Custom.Settings")
    ns, _, nm = name.partition(".")
    if len(ns) > 64 or len(nm) > 64:
        raise InputError(f"package name {name!r}: namespace and name may have at most 64 characters each",
                         hint="choose a shorter name")
    return ns, nm


def check_plain_name(name: str, what: str) -> None:
    if not PLAIN_NAME_RE.match(name):
        raise InputError(f"{what} name {name!r} may only contain letters, digits, '_' and '-'",
                         hint=f"e.g. {'SampleA' if what == 'product' else 'MyBoard'}")


def _existing(kind: str, base: Path, name: str, hint: str) -> Path:
    """The folder ``base/name``; a clear error listing what exists otherwise."""
    d = base / name
    if d.is_dir():
        return d
    names = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if base.is_dir() else []
    lower = {n.lower(): n for n in names}
    if name.lower() in lower:
        h = f"it is named {lower[name.lower()]!r}: names are case-sensitive on Linux"
    elif near := difflib.get_close_matches(name, names, n=1):
        h = f"did you mean {near[0]!r}?"
    else:
        h = (f"existing: {', '.join(names)}; " if names else "there is none yet; ") + hint
    raise InputError(f"{kind} {name!r} does not exist", path=d, hint=h)


def package_exists(ws: Workspace, name: str) -> Path | None:
    for r in ws.search_roots:
        if r.is_dir():
            for d in r.rglob(name):
                if d.is_dir():
                    return d
    return None


def check_wmxml(ws: Workspace, path: Path) -> wmxml.PackageDefinition:
    """Parse a written definition exactly as buildpkg will."""
    roots = tuple(dict.fromkeys([ws.root.resolve(), ws.build_dir.resolve()]))
    return wmxml.load(path, ws.variables(release_dir=path.parent), cpu=ws.bsparch, roots=roots)


# -- feature manifest entry (§4.4) -----------------------------------------------------------------------------
def feature_id(package: str) -> str:
    return package.upper().replace(".", "_")


def prepare_fm_entry(ws: Workspace, fm: Path, package: str, out: Outcome,
                     partition: wmxml.Partition = wmxml.Partition.MAINOS) -> XmlTextDocument | None:
    """The FM with ``<PackageFile … Name="%OEM_NAME%.<package>.cab">`` added under Features/OEM (not yet saved);
    None, with a warning, when the FM does not exist or already lists that cab. A package for another partition
    than MainOS says so (``Partition=``), as buildfm requires."""
    cab = f"%OEM_NAME%.{package}.cab"
    part = "" if partition is wmxml.Partition.MAINOS else f' Partition="{partition.value}"'
    lines = [(0, f'<PackageFile Path="%PKGBLD_DIR%" Name="{cab}"{part}>'), (1, "<FeatureIDs>"),
             (2, f"<FeatureID>{feature_id(package)}</FeatureID>"), (1, "</FeatureIDs>"), (0, "</PackageFile>")]
    if not fm.is_file():
        out.warnings.append(f"{rel(ws, fm)} does not exist, so no feature was added: create that feature manifest "
                            f"and add under <Features><OEM>: {''.join(t for _, t in lines)}")
        return None
    doc = XmlTextDocument.load(fm, what="feature manifest")
    if localname(doc.root) != "FeatureManifest" or etree.QName(doc.root).namespace != oeminput.NS:
        raise InputError(f"root element is <{localname(doc.root)}>, not <FeatureManifest xmlns=\"{oeminput.NS}\">",
                         path=fm, line=doc.root.sourceline, hint="is this the right file?")
    names = {cab.lower(), f"{ws.oem_name}.{package}.cab".lower()}
    for el in doc.root.iter():
        if isinstance(el.tag, str) and localname(el) == "PackageFile" and (el.get("Name") or "").lower() in names:
            out.warnings.append(f"{rel(ws, fm)}:{el.sourceline} already lists {el.get('Name')}; not added again")
            return None
    if doc.child(doc.root, "Features") is None:
        doc.insert_child(doc.root, [(0, "<Features>"), (1, "<OEM>"), (1, "</OEM>"), (0, "</Features>")])
    feats = doc.child(doc.root, "Features")  # every edit re-parses: fetch elements again after one
    if doc.child(feats, "OEM") is None:
        doc.insert_child(feats, [(0, "<OEM>"), (0, "</OEM>")], before=doc.child(feats, "OEMFeatureGroups"))
        feats = doc.child(doc.root, "Features")
    doc.insert_child(doc.child(feats, "OEM"), lines)
    return doc



# -- the steps -------------------------------------------------------------------------------------------------
def new_package(ws: Workspace, name: str, partition: str | wmxml.Partition = wmxml.Partition.MAINOS) -> Outcome:
    """A registry/files package from the kit's template, and its feature in OEMCommonFM.xml."""
    ns, nm = check_package_name(name)
    part = next((p for p in wmxml.Partition if p.value.lower() == str(partition).lower()), None)
    if part is None:
        raise InputError(f"partition {partition!r} unknown", hint="use one of " + ", ".join(p.value for p in
                                                                                             wmxml.Partition))
    if (there := package_exists(ws, name)) is not None:
        raise InputError(f"a package named {name} already exists", path=there, hint="choose another name")
    out = Outcome(package=name)
    fm_doc = prepare_fm_entry(ws, common_packages_dir(ws) / "OEMCommonFM.xml", name, out, part)
    dest = common_packages_dir(ws) / name
    registry = part in wmxml.REGISTRY_PARTITIONS
    values = {"namespace": ns, "name": nm, "partition": part.value, "registry": registry}
    with staged_dir(dest) as tmp:
        create_new(tmp / f"{name}.wm.xml", render("common.wm.xml.j2", **values))
        if not registry:
            create_new(tmp / "readme.txt", render("readme.txt.j2", **values))
        check_wmxml(ws, tmp / f"{name}.wm.xml")
    out.folder, out.definition = dest, dest / f"{name}.wm.xml"
    out.written += sorted(dest.iterdir())
    _save_fm_entry(out, fm_doc, name)
    return out


def inf_to_package(ws: Workspace, inf: str | os.PathLike[str], name: str | None = None,
                   bsp: str | None = None) -> Outcome:
    """A driver package from an INF: the INF and the files it names, a .wm.xml, and the feature in OEMFM.xml
    (or ``<BSP>FM.xml``). ``name`` defaults to ``Drivers.<inf name>``."""
    inf_path = Path(inf).resolve()
    if not inf_path.is_file() or inf_path.suffix.lower() != ".inf":
        raise InputError("is not an .inf file" if inf_path.is_file() else "INF file not found", path=inf_path,
                         hint="give the path of the driver's .inf")
    name = name or f"Drivers.{inf_path.stem}"
    try:
        check_package_name(name)
    except InputError as e:
        raise InputError(e.what, hint=e.hint + "; pass --name Namespace.Name") from None
    driver = parse_inf(inf_path, arch=ws.bsparch)
    if bsp:
        base = _existing("BSP", bsp_dir(ws), bsp, "create it with: invoke newbsp " + bsp) / "Packages"
        fm = base / f"{bsp}FM.xml"
    else:
        base, fm = arch_packages_dir(ws), arch_packages_dir(ws) / "OEMFM.xml"
    dest = base / name
    in_place = inf_path.parent == dest.resolve()
    if not in_place and (there := package_exists(ws, name)) is not None:
        raise InputError(f"a package named {name} already exists", path=there,
                         hint="choose another name with --name")
    out = Outcome(package=name, source=inf_path)
    fm_doc = prepare_fm_entry(ws, fm, name, out)
    ns, nm = check_package_name(name)
    wm = render("driver.wm.xml.j2", namespace=ns, name=nm, inf=inf_path.name)
    if in_place:  # the INF already sits in its package folder: only the definition is new
        create_new(dest / f"{name}.wm.xml", wm)
        try:
            check_wmxml(ws, dest / f"{name}.wm.xml")
        except InputError:
            os.unlink(dest / f"{name}.wm.xml")
            raise
        out.written.append(dest / f"{name}.wm.xml")
    else:
        src_dir = inf_path.parent
        extra = [src_dir / driver.catalog_file] if driver.catalog_file and (src_dir / driver.catalog_file).is_file() \
            else []
        with staged_dir(dest) as tmp:
            for src in dict.fromkeys([inf_path, *(f.source for f in driver.files), *extra]):
                target = tmp / src.resolve().relative_to(src_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                os.chmod(target, 0o644)
            create_new(tmp / f"{name}.wm.xml", wm)
            check_wmxml(ws, tmp / f"{name}.wm.xml")
        out.written += sorted(p for p in dest.rglob("*") if p.is_file())
    out.folder, out.definition = dest, dest / f"{name}.wm.xml"
    _save_fm_entry(out, fm_doc, name)
    return out


def _save_fm_entry(out: Outcome, fm_doc: XmlTextDocument | None, package: str) -> None:
    """Write the FM edit :func:`prepare_fm_entry` made, once the package itself is in place."""
    if fm_doc is not None:
        fm_doc.save()
        out.changed.append(fm_doc.path)
        out.feature_id, out.feature_fm = feature_id(package), fm_doc.path


def new_bsp(ws: Workspace, bsp: str) -> Outcome:
    """bsp/<BSP>/ with an empty feature manifest, its file list and Test/Retail OEMInput samples."""
    check_plain_name(bsp, "BSP")
    dest = bsp_dir(ws, bsp)
    out = Outcome()
    with staged_dir(dest) as tmp:
        create_new(tmp / "Packages" / f"{bsp}FM.xml", render("BSPFM.xml.j2", bsp=bsp))
        create_new(tmp / "Packages" / f"{bsp}FMFileList.xml",
                   render("BSPFMFileList.xml.j2", bsp=bsp, cpu=FM_CPU[ws.arch.value]))
        for config, release in (("Test", "Test"), ("Retail", "Production")):
            p = tmp / "OEMInputSamples" / f"{config}OEMInput.xml"
            create_new(p, render("OEMInput.xml.j2", bsp=bsp, config=config, release_type=release,
                                 test=config == "Test", arch=ws.arch.value))
            oeminput.parse_oeminput(p)
        for p in tmp.rglob("*FM*.xml"):
            parse_bytes(p.read_bytes(), path=p, what="feature manifest")
    out.folder = dest
    out.written += sorted(p for p in dest.rglob("*") if p.is_file())
    return out


def _config_of(sample: Path) -> str:
    stem = sample.name[:-len("oeminput.xml")]
    return stem[:1].upper() + stem[1:] if stem else "Test"


def new_product(ws: Workspace, product: str, bsp: str) -> Outcome:
    """products/<Product>/ from the BSP's OEMInput samples, with <Product>Settings.xml and prov/."""
    check_plain_name(product, "product")
    board = _existing("BSP", bsp_dir(ws), bsp, "create it with: invoke newbsp " + bsp)
    dest = ws.products_dir / product
    if dest.exists():
        raise InputError(f"product {product!r} already exists", path=dest,
                         hint="choose another name, or edit its OEMInput files with addfid/removefid")
    samples_dir = board / "OEMInputSamples"
    samples = sorted((p for p in samples_dir.glob("*") if p.is_file() and p.name.lower().endswith("oeminput.xml")),
                     key=lambda p: ({"test": 0, "retail": 1}.get(_config_of(p).lower(), 2), p.name))
    if not samples:
        raise InputError(f"BSP {bsp} has no OEMInput samples", path=samples_dir,
                         hint="add TestOEMInput.xml and RetailOEMInput.xml there (invoke newbsp writes templates)")
    out = Outcome()
    configs = []
    with staged_dir(dest) as tmp:
        for sample in samples:
            oeminput.parse_oeminput(sample)  # a broken sample is reported at its own file:line
            config = _config_of(sample)
            configs.append(config)
            doc = XmlTextDocument(tmp / sample.name, sample.read_bytes(), what="OEMInput file")
            desc = f"{ws.oem_name} {product} {config} image with the {bsp} BSP"
            if (d := doc.child(doc.root, "Description")) is not None:
                doc.set_text(d, desc)
            else:
                first = next(c for c in doc.root if isinstance(c.tag, str))
                doc.insert_child(doc.root, [(0, f"<Description>{desc}</Description>")], before=first)
            oeminput.from_root(doc.root, sample)
            create_new(tmp / sample.name, doc.to_bytes())
        create_new(tmp / f"{product}Settings.xml",
                   render("ProductSettings.xml.j2", product=product, arch=ws.arch.value, bsp=bsp, oem=ws.oem_name,
                          configs=configs))
        (tmp / "prov").mkdir()
    out.folder, out.configs = dest, configs
    out.written += sorted(p for p in dest.rglob("*") if p.is_file())
    return out


def oeminput_files(ws: Workspace, product: str, config: str) -> list[Path]:
    """The product's Test, Retail or All (every ``*OEMInput.xml``, Test and Retail first) OEMInput files."""
    pdir = _existing("product", ws.products_dir, product, "create it with: invoke newproduct " + product + " <BSP>")
    files = {p.name.lower(): p for p in pdir.iterdir() if p.is_file() and p.name.lower().endswith("oeminput.xml")}
    if config.lower() == "all":
        if not files:
            raise InputError(f"product {product} has no *OEMInput.xml", path=pdir)
        return [files[k] for k in sorted(files, key=lambda k: ({"testoeminput.xml": 0, "retailoeminput.xml": 1}
                                                               .get(k, 2), k))]
    if config.lower() not in ("test", "retail"):
        raise InputError(f"configuration {config!r} unknown", hint="use Test, Retail or All")
    key = f"{config.lower()}oeminput.xml"
    if key not in files:
        raise InputError(f"product {product} has no {config.capitalize()}OEMInput.xml", path=pdir,
                         hint="existing: " + (", ".join(p.name for p in files.values()) or "none"))
    return [files[key]]


def edit_feature(ws: Workspace, action: Literal["add", "remove"], product: str, config: str, fid: str,
                 oem: bool) -> Outcome:
    """Add or remove a feature ID in the product's OEMInput file(s); a file that already has (or lacks) it is
    left alone and listed in ``unchanged``."""
    edit = oeminput.add_feature if action == "add" else oeminput.remove_feature
    out = Outcome()
    for f in oeminput_files(ws, product, config):
        (out.changed if edit(f, fid, oem=oem) else out.unchanged).append(f)
    return out


def normalize_version(version: str) -> str:
    """``a.b.c.d`` with each part 0-65535, without leading zeros; an InputError otherwise."""
    if not _VERSION_RE.match(version) or any(int(p) > 65535 for p in version.split(".")):
        raise InputError(f"version {version!r} is not a.b.c.d with each part 0-65535", hint="e.g. 10.0.2.0")
    return ".".join(str(int(p)) for p in version.split("."))


def set_version(ws: Workspace, version: str) -> Outcome:
    """Set Env[current arch]/BSPVersion in IoTWorkspace.xml (adding the Env or the element if missing).

    ``ws`` should be loaded with ``BSP_VERSION`` set to ``version``: the file's current version is not checked,
    because setting it is how a bad one gets fixed. ``old_version`` is what was there; nothing is written when
    it already equals ``version``.
    """
    version = normalize_version(version)
    doc = XmlTextDocument.load(ws.config_path, what="workspace configuration")
    arch = ws.arch.value
    env_el = next((e for e in doc.root if isinstance(e.tag, str) and localname(e) == "Env"
                   and (e.get("Name") or "").lower() == arch), None)
    out = Outcome()
    old = None
    if env_el is None:
        envs = [e for e in doc.root if isinstance(e.tag, str) and localname(e) == "Env"]
        after = envs[-1] if envs else doc.child(doc.root, "Config")
        siblings = [e for e in doc.root if isinstance(e.tag, str)]
        nxt = siblings[siblings.index(after) + 1] if after is not None and siblings.index(after) + 1 < len(siblings) \
            else None
        doc.insert_child(doc.root, [(0, f'<Env Name="{arch}">'), (1, f"<BSPVersion>{version}</BSPVersion>"),
                                    (1, "<BSPPkgDir>%PKGBLD_DIR%</BSPPkgDir>"), (0, "</Env>")], before=nxt)
    elif (ver_el := doc.child(env_el, "BSPVersion")) is None:
        doc.insert_child(env_el, [(0, f"<BSPVersion>{version}</BSPVersion>")], before=doc.child(env_el, "BSPPkgDir"))
    else:
        old = (ver_el.text or "").strip() or None
        if old != version:
            doc.set_text(ver_el, version)
    if old != version:
        doc.save()
        out.changed.append(doc.path)
    if os.environ.get("BSP_VERSION") and os.environ["BSP_VERSION"] != version:
        out.warnings.append(f"BSP_VERSION={os.environ['BSP_VERSION']} is set in the environment and overrides the "
                            "file; unset it to build with the new version")
    out.old_version = old
    return out
