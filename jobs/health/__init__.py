"""Health: snapshots, the verdict and status, Prometheus metrics and the weekly health report."""
