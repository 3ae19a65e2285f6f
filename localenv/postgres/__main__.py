import sys

from localenv.postgres.command import main

sys.exit(main())
