"""`python -m handpose <stage>`: how dvc.yaml runs the stages, with this checkout's src/ first on the path."""

from handpose.cli import main

raise SystemExit(main())
