"""`python -m attrnet ...` runs the command line (as under `torchrun -m attrnet train ...`)."""
import sys

from attrnet.cli import main

sys.exit(main())
