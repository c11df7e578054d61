"""Old name of `razn.label_grid` (label-grid files), kept so existing imports work."""

from razn.label_grid import *  # noqa: F403
from razn.label_grid import __all__  # noqa: F401
from razn.label_grid._files import FORMAT_VERSION  # noqa: F401
