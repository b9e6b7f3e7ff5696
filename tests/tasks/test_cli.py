"""The command front end: optional positional target, --workspace, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

from invoke.parser import Argument, Parser, ParserContext

from iotbuild.tasks import ns
from iotbuild.tasks._optional_positional import FALLBACKS


def test_buildpkg_target_is_optional_and_positional():
    assert FALLBACKS[("buildpkg", "target")] == "All"
    task = ns.tasks["buildpkg"]
    ctx = ParserContext(name="buildpkg", args=task.get_arguments())
    parser = Parser(contexts=[ctx])
    assert parser.parse_argv(["buildpkg"])[0].args["target"].value == "All"
    assert parser.parse_argv(["buildpkg", "Registry.Version"])[0].args["target"].value == "Registry.Version"
    assert parser.parse_argv(["buildpkg", "--why"])[0].args["target"].value == "All"


def test_other_tasks_keep_required_positionals():
    ctx = ParserContext(name="verifycab", args=ns.tasks["verifycab"].get_arguments())
    import pytest
    from invoke.exceptions import ParseError
    with pytest.raises(ParseError):
        Parser(contexts=[ctx]).parse_argv(["verifycab"])


def test_no_workspace_is_one_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "IOTBUILD_WORKSPACE"}
    p = subprocess.run([sys.executable, "-m", "iotbuild.cli", "buildpkg"], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 1
    assert "no IoTWorkspace.xml found" in p.stderr and "Traceback" not in p.stderr
    assert "--workspace" in p.stderr


def test_console_script_with_workspace_from_another_folder(tmp_path):
    import shutil
    from tests.conftest import REPO
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "workspace", ws / "workspace", ignore=shutil.ignore_patterns("Certs"))
    shutil.copytree(REPO / "packages/Registry.Version", ws / "packages/Registry.Version")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = subprocess.run([sys.executable, "-m", "iotbuild", "--workspace", str(ws), "buildpkg", "--json"],
                       cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    import json
    assert json.loads(p.stdout)["packages"][0]["status"] == "built"
    assert (ws / "build/amd64/pkgs/Contoso.Registry.Version.cab").is_file()
    assert not (elsewhere / "build").exists()


def test_task_help_works_despite_positional_arguments():
    for task in ("buildpkg", "verifycab"):
        p = subprocess.run([sys.executable, "-m", "iotbuild", task, "--help"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert "Docstring:" in p.stdout and "--json" in p.stdout
