"""The Health page: database growth, jobs, schedule, cleanup and health reports."""
