import sys

from ditlaws.sweep.cli import main

sys.exit(main())
