"""`python -m core.cli ...`: the same as the `safeseek` command."""

import sys

from core.cli.main import main

if __name__ == "__main__":  # worker processes (spawned) import this module too
    sys.exit(main())
