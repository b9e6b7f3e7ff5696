"""``python -m iotbuild``: the same as the ``iotbuild`` console script."""

from .cli import main

main()
