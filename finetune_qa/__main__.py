"""``python -m finetune_qa`` runs the command line."""

import sys

from finetune_qa.cli import main

sys.exit(main())
