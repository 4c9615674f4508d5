"""`python -m gradwise` runs the command line."""

import sys

from gradwise.cli.__main__ import main

sys.exit(main())
