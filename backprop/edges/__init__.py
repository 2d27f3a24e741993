"""Host-side edges: data files and data sets, computed features, standardization and the
output heads, checkpoints and the one write guard, weights files (the weights apart from the
architecture), plots. NumPy is their data format."""
