import sys

from jobs.cli import main, quiet_broken_pipe

quiet_broken_pipe()
sys.exit(main())
