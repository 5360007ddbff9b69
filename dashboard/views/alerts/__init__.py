"""The Alerts page: firing alerts, their history and deliveries; also the critical-alert banner."""
