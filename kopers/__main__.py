"""Allow `python -m kopers`."""

from kopers.cli import main

raise SystemExit(main())
