"""Scoring (``scoring``, the one place numbers are computed) and what renders them: terminal
tables, the HTML page, plots, and the comparison of runs."""
