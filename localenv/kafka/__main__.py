import sys

from localenv.kafka import main

sys.exit(main())
