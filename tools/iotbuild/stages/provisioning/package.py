"""``buildppkg``: answer file → ``<name>.ppkg`` (a WIM) + ``<name>.cat`` (signed catalog) under ``build/<arch>/ppkgs``.

The recipe (provisioning-ppkg.md §1): read and check the answer file, compile every setting and find every
asset, load the signing identity — all before anything is written — then lay the package tree out in a
staging folder beside the outputs, capture it with wimlib, sign a catalog holding the ``.ppkg``'s SHA-256 and
rename both into place. A failure anywhere removes the staging folder, so no half-written package appears.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ... import __version__
from ...errors import InputError
from ...formats import catalog as catfmt
from ...formats import wim
from ...models.customizations import Customizations, load_customizations
from ...models.workspace import Workspace
from ...outputs import build_epoch
from ...signing.identity import load_signer
from . import compile as comp
from ...digest import sha256_file

ENCRYPTION_UNSUPPORTED = ("package encryption is not supported: the format of an encrypted .ppkg is undocumented "
                          "(provisioning-ppkg.md §1.5), so iotbuild cannot write one that Windows would read")


@dataclass(frozen=True)
class BuiltPpkg:
    name: str
    ppkg: Path
    cat: Path
    size: int
    settings: int
    entries: int
    assets: int
    uncompiled: tuple[str, ...]
    warnings: tuple[str, ...]
    source: Path

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ppkg": str(self.ppkg), "cat": str(self.cat), "size": self.size,
                "settings": self.settings, "runtime_entries": self.entries, "assets": self.assets,
                "not_compiled": list(self.uncompiled), "warnings": list(self.warnings), "source": str(self.source)}


def select_answer_file(ws: Workspace, target: str) -> tuple[Path, str | None]:
    """A path to an answer file, or a product name (``products/<P>/prov/customizations.xml``, output ``<P>Prov``,
    the name the kit's Provisioning.Auto package picks up)."""
    p = Path(target)
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, ws.root / p]):
        if cand.is_file():
            return cand.resolve(), None
        if cand.is_dir() and (cand / "customizations.xml").is_file():
            return (cand / "customizations.xml").resolve(), None
    if "/" not in target and "\\" not in target and not target.lower().endswith(".xml"):
        prod = ws.products_dir / target
        answer = prod / "prov" / "customizations.xml"
        if answer.is_file():
            return answer, f"{target}Prov"
        if prod.is_dir():
            raise InputError(f"product {target} has no prov/customizations.xml", path=prod,
                             hint=f"create {answer} (see products/SampleA/prov/customizations.xml)")
        known = sorted(d.name for d in ws.products_dir.iterdir() if d.is_dir()) if ws.products_dir.is_dir() else []
        raise InputError(f"no product named {target!r} and no file {target}", path=ws.products_dir,
                         hint="give a customizations.xml path or a product folder name"
                              + (f" ({', '.join(known)})" if known else ""))
    raise InputError(f"answer file {target} not found", path=p, hint="check the path of the customizations.xml")


def build_ppkg(ws: Workspace, answer: Path, *, name: str | None = None, allow_unknown: bool = False,
               encrypt: bool = False, asset_dirs: Sequence[Path] = (), out_dir: Path | None = None) -> BuiltPpkg:
    if encrypt:
        raise InputError(ENCRYPTION_UNSUPPORTED, path=answer,
                         hint="build without --encrypt; protect the package in transit some other way")
    cust = load_customizations(answer)
    compiled = comp.compile_package(cust, allow_unknown=allow_unknown, asset_dirs=asset_dirs)
    name = name or cust.package.name
    signer = load_signer(ws.signing, oem_name=ws.oem_name, now=dt.datetime.now(dt.timezone.utc))
    out_dir = out_dir or ws.ppkg_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    epoch = build_epoch()
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=out_dir))
    try:
        tree = staging / "tree"
        lay_out(compiled, tree)
        ppkg = staging / f"{name}.ppkg"
        wim.capture(tree, ppkg, name=cust.package.name, properties=wim_properties(cust),
                    epoch=epoch, guid=_derived_guid(compiled, epoch, "wim"))
        digest = sha256_file(ppkg)
        when = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
        cat = catfmt.build_catalog([catfmt.CatalogMember.from_digest(digest)], package_name=f"{name}.ppkg",
                                   signer=signer, signing_time=when,
                                   list_identifier=_derived_guid(compiled, epoch, "cat").bytes)
        (staging / f"{name}.cat").write_bytes(cat)
        final_ppkg, final_cat = out_dir / f"{name}.ppkg", out_dir / f"{name}.cat"
        # The catalog first: a .ppkg under its final name always has its catalog beside it.
        (staging / f"{name}.cat").replace(final_cat)
        ppkg.replace(final_ppkg)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuiltPpkg(name=name, ppkg=final_ppkg, cat=final_cat, size=final_ppkg.stat().st_size,
                     settings=sum(len(s.settings) for s in cust.sections), entries=len(compiled.entries),
                     assets=len(compiled.assets), uncompiled=tuple(s.path for s in compiled.uncompiled),
                     warnings=tuple(str(w) for w in cust.warnings), source=answer)


def wim_properties(cust: Customizations) -> dict[str, str]:
    """The WIM image XML of a real package (§1.1 table): VERSION, ALTITUDE, PACKAGEID, RESETCLEAR, NOTES."""
    pc = cust.package
    notes = (f"VERSION={__version__}+iotbuild;Source=CLI;;TargetSkus=WindowsCommon;EncryptPackage=False;"
             f"SignPackage=False;PackageID={pc.id};")
    return {"VERSION": pc.version, "ALTITUDE": str(pc.altitude), "RESETCLEAR": "0", "PACKAGEID": pc.braced_id,
            "NOTES": notes}


def lay_out(compiled: comp.CompiledPackage, tree: Path) -> None:
    """Write the member tree of a real package (§1.2) under ``tree``."""
    cust = compiled.customizations
    files: dict[str, bytes] = {
        "CommonSettings/CommonSettings.xml": comp.render_elements("CommonSettings", 1),
        "CommonSettings/1/AnswerFile.xml": comp.render_answer_file(cust),
        "DataAsset/DataAsset.xml": comp.render_data_asset_index(compiled.assets),
        "Multivariant/Multivariant.xml": comp.render_elements("Multivariant", 0),
        "Multivariant/0/customizations.xml": comp.answer_file_copy(cust),
        "Multivariant/0/MasterDatastore.xml": comp.render_master_datastore(),
        "Multivariant/0/Prov/RunTime.xml": comp.render_runtime(compiled.entries),
    }
    for g in compiled.groups:
        files[f"Multivariant/0/Prov/RunTime/{g.file_name}"] = comp.render_provxml(g)
    for rel, data in files.items():
        dest = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    for a in compiled.assets:
        dest = tree / "DataAsset" / "2" / a.folder / a.file_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a.source, dest)


def _derived_guid(compiled: comp.CompiledPackage, epoch: int, what: str) -> uuid.UUID:
    """A GUID that changes with the package's inputs (answer file, assets) and build time, never with the clock."""
    cust = compiled.customizations
    digest = hashlib.sha256(cust.raw + "".join(a.digest_b64 for a in compiled.assets).encode()).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"iotbuild:ppkg:{what}:{cust.package.id}:{cust.package.version}:"
                                          f"{epoch}:{digest}")


