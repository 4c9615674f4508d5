"""`python -m gradwise.bench [...]`: the same as `gradwise bench [...]` (with `--worker`: one worker)."""

from __future__ import annotations

import sys

if "--worker" in sys.argv[1:]:
    from gradwise.bench.worker import main
else:
    from gradwise.bench.runner import main

sys.exit(main())
