"""Alerting: rules judge the database (``rules``), the life cycle turns their conditions into
alerts and queued notifications (``lifecycle``), channels deliver them (``channels``,
``delivery``); ``python -m jobs watch`` (``jobs.alerting.watch``) runs it all.

To add a rule, see the docstring of ``jobs.alerting.rules``: a query block, one decorated
function, and the rule's name in the alerts table's CHECK.
"""
