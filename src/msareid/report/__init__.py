"""Pictures and pages a person opens: image grids, plots, HTML reports."""
