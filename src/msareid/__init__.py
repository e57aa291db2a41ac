"""msareid: RGB-infrared person re-identification built around MSA (IJCAI 2021)."""

__version__ = "0.1.0"
