"""Migration scripts, applied in order by `atelier migrate`."""
