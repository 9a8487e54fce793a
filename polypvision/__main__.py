from __future__ import annotations

import sys

from polypvision.cli import main

sys.exit(main())
