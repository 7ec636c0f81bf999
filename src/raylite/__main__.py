"""`python -m raylite ...` is the `raylite` command."""
from .cli.main import main

main()
