"""Peer-to-peer replication and its secure transport (Secret Handshake, box-stream)."""
