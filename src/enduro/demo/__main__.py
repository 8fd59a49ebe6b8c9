import sys

from enduro.demo.server import main

sys.exit(main())
