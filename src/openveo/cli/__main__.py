"""`python -m openveo.cli`: how `serve` starts its workers."""

from openveo.cli import main

main()
