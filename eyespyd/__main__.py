"""`python -m eyespyd` is the `eyespyd` command."""

from eyespyd.cli import main

raise SystemExit(main())
