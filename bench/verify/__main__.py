"""``python -m bench.verify PATH``: score every decider on the scenarios under PATH."""

import sys

from .run import main

sys.exit(main())
