"""The dashboard's pages, one folder each: the page script (``page.py``) beside its figures and sections."""
