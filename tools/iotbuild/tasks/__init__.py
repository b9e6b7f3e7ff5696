"""Invoke tasks named like the kit's commands. Thin: parse arguments, call one stage, map errors to exits."""

from invoke import Collection

from . import author, ffu, fm, image, pkg, ppkg, smoke

ns = Collection()
for _t in (pkg.buildpkg, pkg.verifycab, pkg.preparesamples, author.newproduct, author.newbsp, author.newpkg,
           author.inf2pkg, author.addfid, author.removefid, author.setversion):
    ns.add_task(_t)
for _t in (fm.buildfm, fm.listfeatures, fm.featurepackages, fm.checkfeatures, fm.checkpackages):
    ns.add_task(_t)
ns.add_task(ppkg.buildppkg)
ns.add_task(image.buildimage)
ns.add_collection(ppkg.ns)
ns.add_collection(ffu.ns)
ns.add_task(smoke.smoketest)
ns.add_collection(smoke.ns)
