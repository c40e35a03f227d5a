"""`python -m gateway` is `gemini-gateway`."""

import sys

from gateway.cli import main

sys.exit(main())
