"""Lets the tests here import the planted-PHI generator (tests/deid/planted.py) as ``planted``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
