"""`python -m parallel_runs run ...`: the same as the `parallel-runs` console script."""

import sys

from .cli import main

sys.exit(main())
