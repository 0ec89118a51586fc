import sys

from recsvc.cli.main import main

sys.exit(main())
