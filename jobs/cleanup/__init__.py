"""Cleanup: archival of old webhook events, stale pending registrations, and the monitor's own history."""
