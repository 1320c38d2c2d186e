"""The bundled model organism: its synthetic corpus and its training."""
