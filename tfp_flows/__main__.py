"""`python -m tfp_flows ...` is the `tfp-flows` command line."""

from tfp_flows.cli import main

raise SystemExit(main())
