"""Fault scenarios run against real processes, shared by the test suite and ``bench/fault_recovery.py``.

Each scenario sets up real servers (the reference receiver under uvicorn with its workers,
the database it is given), injects one fault the way production meets it (a SIGKILL, not
an exception raised on purpose), lets the system recover as it would by itself (Stripe
repeating its deliveries), and returns a :class:`~devharness.scenarios.steps.ScenarioResult`
that counts what was lost or duplicated. Tests assert on the counts; the bench prints them
as a table. One module per kind of fault, each with the statements it runs beside it:

- :mod:`.receiver_crash`: the receiver SIGKILLed in the middle of a burst of deliveries;
- :mod:`.postgres_restarts`: PostgreSQL restarted under the receiver and under each job;
- :mod:`.stripe_outages`: Stripe answering errors, or not answering, under ``sweep`` and
  ``reconcile``;
- :mod:`.alert_channels_down`: the alert webhook, or Slack and the mail server, down during
  an incident;
- :mod:`.concurrent_jobs`: two ``retry`` or two ``schedule`` processes at once;
- :mod:`.job_crash`: a ``watch`` process SIGKILLed beside a live one;
- :mod:`.steps`: what they share (processes, deliveries, starting data, the counts).
"""
