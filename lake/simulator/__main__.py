from lake.simulator.cli import main

raise SystemExit(main())
