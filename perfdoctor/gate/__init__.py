"""Performance gates: budgets and baselines over report.json (`perfdoctor check`), side-by-side
comparison of two runs (`perfdoctor diff`), and the pieces the pytest plugin reuses.

Everything here reads report.json only; none of it imports torch, and numpy never at start-up.
"""
