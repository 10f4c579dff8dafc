from mm_bronze.cli import main

raise SystemExit(main())
