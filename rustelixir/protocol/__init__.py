"""Sans-IO protocol layers: no sockets, no event loop."""
