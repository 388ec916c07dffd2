"""`python -m ssld_zoo` is the `ssld-zoo` command."""
import sys

from .cli import main

sys.exit(main())
