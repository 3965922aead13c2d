import sys
from pathlib import Path

# tests/support.py is imported by the database and end-to-end tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
