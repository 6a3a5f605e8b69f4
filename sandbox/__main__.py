"""`python -m sandbox --port 8400 --latency 0.05`: see `sandbox.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
