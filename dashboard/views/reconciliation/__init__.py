"""The Reconciliation page: runs, the review queue, and the missed-events sweep."""
