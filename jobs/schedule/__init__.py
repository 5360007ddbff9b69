"""The schedule: a pure timetable of job names, and the runner that fires the jobs on it."""
