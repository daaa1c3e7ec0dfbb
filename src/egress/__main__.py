"""``python -m egress``: the same command line as ``egress``."""

import sys

from egress.cli import main

sys.exit(main())
