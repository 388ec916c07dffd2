"""`python -m ssld_zoo` is the `ssld-zoo` command."""
import sys

from ssld_zoo.cli import main

sys.exit(main())
