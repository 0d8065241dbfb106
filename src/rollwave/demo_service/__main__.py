"""``python -m rollwave.demo_service``: run one demo instance (see ``cli``)."""

import sys

from rollwave.demo_service.cli import main

sys.exit(main())
