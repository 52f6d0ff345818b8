import sys

from workload_eval.cli import main

sys.exit(main())
