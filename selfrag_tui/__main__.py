import sys

from selfrag_tui.cli import main

sys.exit(main())
