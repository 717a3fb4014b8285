from swimlatent_wrap.cli import main

raise SystemExit(main())
