"""`python -m iterkd ...`: the `iterkd` command where its console script is not installed (a
checkout on PYTHONPATH, as on a lent GPU machine)."""

import sys

from iterkd.cli import main

if __name__ == "__main__":
    sys.exit(main())
