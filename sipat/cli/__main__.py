"""`python -m sipat.cli ...`, the same as the `sipat` script."""

import sys

from sipat.cli.main import main

sys.exit(main())
