"""The client scenario catalogue. Each test is one scenario with a stable id
(``C-*``), the client requirement it checks (``STD-RT-C*``), the client profiles
that need it, and the deliberately flawed reference adapters it must catch.
"""

from pathlib import Path

CLIENT_SCENARIOS_DIR = Path(__file__).parent

SINGLE_USE = "single-use-client"
DATABRICKS = "databricks-client"
BOTH = (SINGLE_USE, DATABRICKS)
