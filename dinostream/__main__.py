import sys

from dinostream.cli import main

sys.exit(main())
