"""buildppkg, ppkg.info and ppkg.resolve: provisioning packages.

Registration (tasks/__init__.py): ``ns.add_task(ppkg.buildppkg)`` and ``ns.add_collection(ppkg.ns)``; the
collection holds ``info`` and ``resolve`` (``invoke ppkg.info``, ``invoke ppkg.resolve``).
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task
from invoke.parser.parser import ParseMachine

from ..console import emit_json, say


def out(text: str = "") -> None:
    """Data a person asked for (listings, tables) goes to stdout; progress and summaries to stderr (say)."""
    print(text, flush=True)
from ..errors import InputError
from ._common import handle_errors, open_workspace

# -- `ppkg.resolve --device F a.ppkg b.xml …`: several positional packages ---------------------------------
# Invoke has no variadic positionals: the argument is declared iterable (a list), and words after the task
# name that are neither flags nor task names are appended to it. Only the contexts registered here change.
VARIADIC: dict[str, str] = {"ppkg.resolve": "packages", "resolve": "packages"}
_previous_handle = ParseMachine.handle


def _handle(self, token: str) -> None:  # type: ignore[no-untyped-def]
    ctx = self.context
    arg_name = VARIADIC.get(ctx.name) if ctx is not None else None
    if (arg_name and not token.startswith("-") and not self.waiting_for_flag_value
            and token not in self.contexts and token not in ctx.flags):
        ctx.args[arg_name].value = token   # a list argument appends
        return
    _previous_handle(self, token)


if getattr(ParseMachine.handle, "__name__", "") != "_handle" or \
        getattr(ParseMachine.handle, "__module__", "") != __name__:
    ParseMachine.handle = _handle  # type: ignore[method-assign]


@task(help={
    "target": "a customizations.xml, or a product name (products/<P>/prov/customizations.xml → <P>Prov.ppkg)",
    "allow_unknown_settings": "carry settings the catalog does not know in the answer file, without compiling them",
    "encrypt": "encrypt the package (refused: the encrypted format is undocumented)",
    "assets": "folder where file assets given as Windows paths (D:\\x.msi) are looked up by file name",
    "json": "print a JSON result on stdout",
    "workspace": "workspace folder (default: the current folder or IOTBUILD_WORKSPACE)",
}, positional=["target"])
@handle_errors
def buildppkg(c, target, allow_unknown_settings=False, encrypt=False, assets=None, json=False, workspace=None):
    """Build a provisioning package (.ppkg + signed .cat) into build/<arch>/ppkgs from a customizations.xml."""
    from ..stages import provisioning
    ws = open_workspace(workspace)
    answer, name = provisioning.select_answer_file(ws, target)
    built = provisioning.build_ppkg(ws, answer, name=name, allow_unknown=allow_unknown_settings, encrypt=encrypt,
                                    asset_dirs=[Path(assets)] if assets else [])
    if json:
        emit_json({"ok": True, **built.to_dict()})
        return
    for w in built.warnings:
        say(f"warning: {w}")
    if built.uncompiled:
        say(f"warning: {len(built.uncompiled)} unknown setting(s) carried in the answer file but NOT compiled "
            "(the device will not apply them): " + ", ".join(built.uncompiled))
    say(f"buildppkg: {built.name}: {built.settings} setting(s), {built.entries} RunTime entr"
        f"{'y' if built.entries == 1 else 'ies'}, {built.assets} asset(s) → {built.ppkg} + {built.cat.name} "
        f"({built.size} bytes)")


@task(help={"package": "the .ppkg to read (built by iotbuild or by Windows Configuration Designer)",
            "json": "print a JSON result on stdout"})
@handle_errors
def info(c, package, json=False):
    """Print a provisioning package's metadata, settings, targets and variants."""
    from ..stages.provisioning import read_ppkg
    result = read_ppkg(Path(package))
    if json:
        emit_json({"ok": True, **result.to_dict()})
        return
    d = result.to_dict()
    meta = d["metadata"]
    out(f"{result.path}: WIM {d['wim']['version']} {d['wim']['compression']}, {len(result.members)} member(s), "
        f"{len(result.compiled)} RunTime entr{'y' if len(result.compiled) == 1 else 'ies'}")
    for k in ("NAME", "VERSION", "PACKAGEID", "ALTITUDE", "NOTES"):
        out(f"  {k:<10} {meta.get(k, '')}")
    cust = result.customizations
    if cust is not None:
        pc = cust.package
        out(f"  owner      {pc.owner_type.value}, rank {pc.rank} (altitude {pc.altitude})")
        out("settings:")
        for sec, s in cust.all_settings():
            out(f"  [{sec.label}] {s.path} = {s.value}")
        if cust.targets:
            out("targets:")
            for t in cust.targets.values():
                out(f"  {t.id}: " + " OR ".join(f"({st.describe()})" for st in t.states))
        if cust.variants:
            out("variants:")
            for v in cust.variants:
                out(f"  {v.label}: targets {', '.join(v.target_refs) or '-'}; {len(v.settings)} setting(s)")
    for w in result.warnings:
        say(f"warning: {w}")


@task(help={"device": "device facts: JSON or YAML, condition name → value (MCC, MNC, Region, …)",
            "packages": "packages (.ppkg or customizations.xml), several allowed",
            "rules": "TargetState priority rules: current (default) or 2017-01",
            "not_range": "meaning of '!Range:': negate (default, outside the range) or range (same as Range:)",
            "json": "print a JSON result on stdout"},
      positional=["packages"], iterable=["packages"])
@handle_errors
def resolve(c, device, packages=None, rules="current", not_range="negate", json=False):
    """Simulate the provisioning engine: each setting's final value on a device, who set it, what it overrode.

    Packages apply by owner type (Microsoft < SiliconVendor < OEM < SystemIntegrator < MobileOperator < ITAdmin),
    then rank; the last applied wins. Same owner type and rank: the package given later on the command line wins
    (undocumented by Microsoft). Inside a package: Common first, then Variants by TargetState priority
    (--rules), equal priorities in TargetState definition order.
    """
    from ..stages import provisioning as prov
    try:
        rule_set = prov.Rules(rules)
    except ValueError:
        raise InputError(f"--rules {rules!r} is unknown", hint="use current or 2017-01") from None
    try:
        nr = prov.NotRange(not_range)
    except ValueError:
        raise InputError(f"--not-range {not_range!r} is unknown", hint="use negate or range") from None
    if not packages:
        raise InputError("no package given", hint="ppkg.resolve --device facts.json A.ppkg [B.xml …]")
    facts = prov.load_facts(Path(device))
    sources = [prov.load_source(Path(p)) for p in packages]
    result = prov.resolve(sources, facts, rules=rule_set, not_range=nr)
    if json:
        emit_json({"ok": True, "rules": rule_set.value, "not_range": nr.value, "device": facts, **result.to_dict()})
        return
    from rich.console import Console
    from rich.table import Table

    from ..stages.provisioning.resolve import describe_state
    table = Table(title=f"{len(result.settings)} setting(s), rules {rule_set.value}", show_lines=False)
    for col in ("setting", "value", "package", "won by", "overrode"):
        table.add_column(col, overflow="fold")
    for r in result.settings.values():
        w = r.winner
        over = "; ".join(f"{a.value} ({a.package}, {describe_state(a)})" for a in r.overrode) or "-"
        table.add_row(r.path, w.value, w.package, describe_state(w), over)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(table)
    say(f"ppkg.resolve: {len(result.packages)} package(s) in order "
        + " < ".join(f"{p.name} ({p.owner_type}/{p.rank})" for p in result.packages)
        + f"; {len(result.matched_states)} TargetState(s) matched")


ns = Collection("ppkg")
ns.add_task(info)
ns.add_task(resolve)
