import sys

from razn.cli import main

sys.exit(main())
