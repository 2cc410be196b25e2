"""Repository-wide test settings: no test of this repository may download from outside this machine."""

from __future__ import annotations

import os

# Set before any test (and inherited by the subprocesses tests start): a builder whose mirrors
# fail falls through to its published URLs; here that is refused at once instead of attempted.
os.environ["DSREG_NETWORK"] = "loopback"
