"""velibcast: forecasts of Velib' availability in batch (README.md)."""

import os as _os

from velibcast.layout import check_stage_links as _check_stage_links

_check_stage_links(_os.path.dirname(__file__))
