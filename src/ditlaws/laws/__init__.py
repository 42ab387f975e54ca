"""Scaling-law fitting: isoFLOP optima (Approach 2), parametric L(N, D) (Approach 3), bootstrap, backtests with an
extrapolation-error model, and a prediction API over the saved fit (``ditlaws.laws.predict``).

Uses numpy, scipy and matplotlib only (no torch), so it imports fast. Entry point: ``fit_laws.py``.
Import the submodules directly (``from ditlaws.laws.predict import load_fit``).
"""
