"""``python -m nas.dashboard``: render a study's dashboard (see :func:`nas.dashboard.cli.main`)."""
from nas.dashboard.cli import main

raise SystemExit(main())
