"""The pub: an always-on relay that stores and forwards its members' feeds.

``config`` (settings and limits), ``invites`` (invite codes and the invite book),
``relay`` (the node with membership, guests, rate and quota limits), ``server`` (the
aiohttp app, the TCP listener and the process lifecycle), ``metrics`` and ``status``
(what the operator sees). See docs/pub.md.
"""
