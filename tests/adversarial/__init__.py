"""Adversarial corpus and fuzz targets: hostile inputs for every parser a peer can reach."""
