import sys

from dgreg.cli import main

sys.exit(main())
