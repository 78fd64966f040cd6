"""Make the repository's `evaluation` package (converters, not installed) importable in tests."""

import sys
from pathlib import Path

# The converters are run from a checkout (`python -m evaluation.convert_...`) and are not part of
# the installed distribution, so the repository root has to be on the path for the tests too.
REPOSITORY = Path(__file__).resolve().parents[2]
if str(REPOSITORY) not in sys.path:
    sys.path.insert(0, str(REPOSITORY))
