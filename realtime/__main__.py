"""`python -m realtime`: the same as the `gapfill` command."""

import sys

from realtime.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
