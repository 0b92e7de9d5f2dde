"""The server scenario catalogue. Each test is one scenario with a stable id, the
requirement it checks (``STD-RT-*``, see the README) and the profiles that need it.
"""

ROTATION = ("rfc9700", "oauth21", "databricks")
EVERY = ("rfc9700", "oauth21", "databricks", "multi-use")
