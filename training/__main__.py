"""``python -m training [train] [--base-dir DIR]``: see :mod:`training.program`."""

from training.program import main

raise SystemExit(main())
