"""``python -m etem_helpers``: the ``etem`` command (see :mod:`etem_helpers.cli`)."""

from etem_helpers.cli import main

raise SystemExit(main())
