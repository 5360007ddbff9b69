"""One module per page; the entry script (dashboard/app.py) runs the chosen one."""
