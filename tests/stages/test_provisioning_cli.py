"""The provisioning tasks' command-line shape: several positional packages for ppkg.resolve, --help everywhere."""

from __future__ import annotations

import subprocess

from invoke import Collection
from invoke.parser import Parser, ParserContext

from iotbuild.tasks import ppkg
from tests.stages.test_provisioning_support import clean_env, cli


def _parse(argv: list[str]):
    ns = Collection()
    ns.add_task(ppkg.buildppkg)
    ns.add_collection(ppkg.ns)
    contexts = [ParserContext(name=name, args=ns[name].get_arguments()) for name in ("buildppkg", "ppkg.resolve",
                                                                                     "ppkg.info")]
    return Parser(contexts=contexts).parse_argv(argv)


def test_resolve_takes_several_positional_packages() -> None:
    (ctx,) = _parse(["ppkg.resolve", "--device", "d.json", "a.ppkg", "b.xml", "c.ppkg", "--json"])
    assert ctx.args["packages"].value == ["a.ppkg", "b.xml", "c.ppkg"]
    assert ctx.args["device"].value == "d.json" and ctx.args["json"].value is True


def test_words_after_resolve_that_name_tasks_still_start_those_tasks() -> None:
    first, second = _parse(["ppkg.resolve", "--device", "d.json", "a.ppkg", "ppkg.info", "x.ppkg"])
    assert first.args["packages"].value == ["a.ppkg"]
    assert second.name == "ppkg.info" and second.args["package"].value == "x.ppkg"


def test_buildppkg_keeps_one_required_positional() -> None:
    (ctx,) = _parse(["buildppkg", "SampleA", "--allow-unknown-settings"])
    assert ctx.args["target"].value == "SampleA" and ctx.args["allow_unknown_settings"].value is True


def test_help_for_each_task(tmp_path) -> None:
    for task in ("buildppkg", "ppkg.info", "ppkg.resolve"):
        p = subprocess.run([*cli(), task, "--help"], capture_output=True, text=True, cwd=tmp_path, env=clean_env(),
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert "Docstring:" in p.stdout and "--json" in p.stdout


def test_resolve_without_packages_is_one_clear_error(tmp_path) -> None:
    (tmp_path / "d.json").write_text("{}")
    p = subprocess.run([*cli(), "ppkg.resolve", "--device", "d.json"], capture_output=True, text=True, cwd=tmp_path,
                       env=clean_env(), timeout=60)
    assert p.returncode == 1 and "no package given" in p.stderr and "Traceback" not in p.stderr
