"""`python -m engine`: the same as the `engine` command."""

import sys

from engine.commands.main import main

sys.exit(main())
