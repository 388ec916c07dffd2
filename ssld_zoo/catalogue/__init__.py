"""The catalogue layer: every model and weight the zoo knows, as data (no torch, no timm).

- `catalogue.json`: the entries (architecture, weights, preprocessing with its cited source, metrics, origin, mirrors);
- `registry`: reading, layering and validating catalogue files (the schema), and the entry types;
- `shipped`: where the files shipped beside the code (weights trained here, recipes) are, in a checkout or a wheel.
"""
