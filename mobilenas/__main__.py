import sys

from mobilenas.cli import main

sys.exit(main())
