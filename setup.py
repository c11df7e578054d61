"""Package discovery only; everything else is in setup.cfg.

setup.cfg's `find:` searches one folder, and this project keeps the core
(src/razn) and the napari plugin (napari_razn/) in two.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages("src", include=["razn", "razn.*"])
    + find_packages(".", include=["napari_razn", "napari_razn.*"]),
)
