"""``dsreg.fetching.sources``, the name of dsreg 0.1 for ``dsreg.fetching.userdata``.

Importing it gives the very ``userdata`` module (so attributes and monkeypatching behave the same).
It stays only until ``dsreg/_moved.py`` maps this path, as it maps the flat paths of 0.1.
"""

import sys

from . import userdata

sys.modules[__name__] = userdata
