"""buildimage: the product's Flash.ffu from its OEMInput.xml."""

from __future__ import annotations

from invoke import task

from ..console import emit_json, err, say
from ._common import handle_errors, open_workspace

STEP_TEXT = {"inputs": "building inputs", "resolve": "resolving features", "verify": "verifying packages",
             "stage": "staging files and registry", "layout": "placing partitions", "filesystems": "building filesystems",
             "disk": "assembling the disk", "ffu": "writing the FFU", "outputs": "writing side files"}


@task(help={"product": "product folder under products/ (e.g. SampleA)", "config": "Test or Retail",
            "ffu_version": "FFU format: V1 (default) or V2", "ffu_profile": "descriptor plan: MS (default) or compat "
            "(img2ffu's tiling, for older flashing tools)", "force": "rebuild even when nothing changed",
            "no_inputs": "do not rebuild packages, provisioning package and FMs first",
            "jobs": "parallel workers (default: one per core)", "json": "print a JSON result on stdout",
            "workspace": "workspace folder"}, positional=["product", "config"])
@handle_errors
def buildimage(c, product, config, ffu_version="V1", ffu_profile="MS", force=False, no_inputs=False, jobs=0,
               json=False, workspace=None):
    """imggen: build build/<arch>/<Product>/<Test|Retail>/Flash.ffu from the product's OEMInput.xml."""
    from ..errors import InputError
    from ..stages.imggen import ImageOptions, build_image
    version = {"v1": "V1", "v2": "V2"}.get(ffu_version.lower())
    profile = {"ms": "MS", "compat": "compat"}.get(ffu_profile.lower())
    if version is None:
        raise InputError(f"--ffu-version {ffu_version!r}: use V1 or V2")
    if profile is None:
        raise InputError(f"--ffu-profile {ffu_profile!r}: use MS or compat")
    ws = open_workspace(workspace)
    options = ImageOptions(ffu_version=version, ffu_profile=profile, jobs=jobs or None, force=force,
                           build_inputs=not no_inputs)
    live = not json and err.is_terminal
    if live:
        with err.status("buildimage") as status:
            r = build_image(ws, product, config, options=options,
                            on_step=lambda s, d: status.update(f"buildimage {product} {config}: {STEP_TEXT.get(s, s)}"
                                                               + (f" ({d})" if d else "")))
    else:
        r = build_image(ws, product, config, options=options)
    if json:
        emit_json({"ok": True, **r.to_dict()})
        return
    if r.status == "up-to-date":
        say(f"buildimage {r.product} {r.config}: up to date → {r.ffu} ({r.seconds:.1f} s)")
        return
    parts = ", ".join(f"{p['name']} {p['file_system'] or 'raw'} {p['files']} files" for p in r.partitions)
    say(f"buildimage {r.product} {r.config}: {r.ffu} ({r.ffu_size / 2**20:.1f} MiB for a {r.disk_size / 2**30:.2f} GiB "
        f"disk; {len(r.packages)} packages; {parts}) in {r.seconds:.1f} s")
