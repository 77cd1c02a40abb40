from registro.cli import main

raise SystemExit(main())
