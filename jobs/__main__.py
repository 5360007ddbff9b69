import sys

from jobs.cli import interruptible, main, quiet_broken_pipe

interruptible()
quiet_broken_pipe()
sys.exit(main())
