"""Ports: the protocols the application needs from the outside world, one module per port."""
