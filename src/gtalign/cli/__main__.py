"""``python -m gtalign.cli``: the same as the ``gtalign`` command."""

from gtalign.cli import main

raise SystemExit(main())
