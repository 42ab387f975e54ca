"""Scaling-law fitting: isoFLOP optima (Approach 2), parametric L(N, D) (Approach 3), bootstrap, backtests.

Uses numpy, scipy and matplotlib only (no torch), so it imports fast. Entry point: ``fit_laws.py``.
"""

from ditlaws.laws.isoflop import BudgetFit, fit_isoflops
from ditlaws.laws.parametric import ParametricLoss, fit_parametric
from ditlaws.laws.powerlaw import PowerLaw, fit_power_law
from ditlaws.laws.study import FitOptions, StudyFit, fit_study, predictions
from ditlaws.laws.table import RunTable, load_runs

__all__ = ["BudgetFit", "FitOptions", "ParametricLoss", "PowerLaw", "RunTable", "StudyFit", "fit_isoflops",
           "fit_parametric", "fit_power_law", "fit_study", "load_runs", "predictions"]
