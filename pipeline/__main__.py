"""``python -m pipeline`` is the same as ``mapshell``."""

from .shell import main

raise SystemExit(main())
