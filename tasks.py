"""Invoke entry point: ``invoke --list`` shows the commands; they live in tools/iotbuild/tasks."""

from iotbuild.tasks import ns  # noqa: F401  (invoke looks for `ns`)
