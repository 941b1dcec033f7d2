import sys

from rustelixir.cli import main

sys.exit(main())
