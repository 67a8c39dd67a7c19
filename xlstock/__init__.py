"""xlstock: keep shop stock in Excel, publish it online, never overwrite a sale."""

__version__ = "0.1.0"
