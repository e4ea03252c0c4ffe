from codexbro.cli.main import main

raise SystemExit(main())
