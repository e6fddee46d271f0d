"""p2pcrew: peer-to-peer gossip for small crews who organise together."""

__version__ = "0.1.0"
