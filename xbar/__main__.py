"""``python -m xbar``: the ``xbar`` command line, for environments without its entry point on the PATH."""

from .cli import main

main(prog_name="xbar")
