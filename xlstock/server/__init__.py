"""The reference stock service (``xlstock serve``): the shop's online side on one machine."""
