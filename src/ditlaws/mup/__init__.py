"""μP tools: the coordinate check (`ditlaws coordcheck`) and the learning-rate transfer sweep (`ditlaws lrsweep`).

The parametrization itself (init, learning rates, attention scale) is `ditlaws.models.parametrization`.
"""
