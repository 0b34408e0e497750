"""Plotly dashboards of searches: Pareto fronts, progress, parameter effects, the best
architecture's DAG, the trials table, design-space EDFs and the classic nets.

    from nas.dashboard import render
    render("nas.db")                        # -> dashboards/<study>.html
    python -m nas.dashboard --storage nas.db --study my_search -o dashboards/my.html

The numbers come from :mod:`nas.dashboard.compute` (plain, tested functions); the
figures from :mod:`nas.dashboard.figures`; the page from :mod:`nas.dashboard.html`.
Importing this package is cheap: plotly loads when a page is rendered.
"""
from nas.dashboard.cli import DashboardError, load, main, render

__all__ = ["DashboardError", "load", "main", "render"]
