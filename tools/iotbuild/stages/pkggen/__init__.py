"""pkggen: ``.wm.xml`` package definitions → signed SPKG cabs."""

from .runner import PackageResult, build_packages, clean, load_definitions
from .select import select

__all__ = ["PackageResult", "build_packages", "clean", "load_definitions", "select"]
