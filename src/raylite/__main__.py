"""`python -m raylite ...` is the `raylite` command."""
from .cli.main import main

if __name__ == "__main__":
    main()
