"""`python -m ssld_zoo.train RECIPE.yaml [key=value ...]` (also under torchrun): see `ssld_zoo.train.command`."""
import sys

from ssld_zoo.train.command import main

sys.exit(main())
