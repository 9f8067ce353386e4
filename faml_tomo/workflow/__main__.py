"""``python -m faml_tomo.workflow``: see :mod:`faml_tomo.workflow.runner`."""

import sys

from .runner import main

sys.exit(main())
