"""Channel augmentation (CAJ, Ye et al., "Channel Augmented Joint Learning for Visible-Infrared
Recognition", ICCV 2021), the field's common starting point: a data option any system can take.

``data.channel_aug`` gives each RGB image a second view (channel exchange) seen by the ID and
triplet losses, and CAJ's three pipelines with their own erasing (so no other random erasing).
A "+CA" row is its row plus :attr:`ChannelAugmentation.recipe`, differing by the augmentation only.
"""

from __future__ import annotations

from msareid.systems.base import System


class ChannelAugmentation(System):
    """Not a network: the data option of channel augmentation, added to another system's recipe."""

    name = "ca"
    title = "CA"
    summary = "channel augmentation (CAJ, ICCV 2021): a second, channel-exchanged RGB view; adds to any system"
    recipe = {"data.channel_aug": True, "data.random_erasing": 0.0}
