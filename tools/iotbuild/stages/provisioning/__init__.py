"""Provisioning packages: answer file → compiled .ppkg (WIM) + signed .cat; reading packages; engine simulator."""

from .catalog import load_catalog
from .compile import compile_package
from .facts import load_facts
from .info import load_source, read_ppkg
from .package import build_ppkg, select_answer_file
from .resolve import NotRange, Rules, Simulator, resolve

__all__ = ["NotRange", "Rules", "Simulator", "build_ppkg", "compile_package", "load_catalog", "load_facts",
           "load_source", "read_ppkg", "resolve", "select_answer_file"]
