"""msareid: RGB-infrared person re-identification built around MSA (IJCAI 2021)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``msareid.FeatureExtractor`` without importing torch for every ``import msareid``
    if name == "FeatureExtractor":
        from msareid.extractor import FeatureExtractor

        return FeatureExtractor
    raise AttributeError(f"module 'msareid' has no attribute {name!r}")
