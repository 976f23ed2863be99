"""`python -m crossfade.cli`: the crossfade command."""

from . import main

main()
