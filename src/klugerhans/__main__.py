from klugerhans.cli import main

raise SystemExit(main())
