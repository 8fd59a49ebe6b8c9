import sys

from enduro.cli import main

sys.exit(main())
