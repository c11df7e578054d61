"""razn: the Reinforced Auto-Zoom Net core, without napari or Qt.

>>> import razn
>>> slide = razn.open_slide("CMU-1-Small-Region.svs")  # doctest: +SKIP
>>> slide.read_region((0, 0), (1024, 1024), mpp=1.0).shape  # doctest: +SKIP
(512, 512, 3)
"""

from razn._version import __version__
from razn.errors import AnnotationError, RaznError, SlideError
from razn.slide import Slide, open_slide

__all__ = ["__version__", "RaznError", "SlideError", "AnnotationError", "Slide", "open_slide"]
