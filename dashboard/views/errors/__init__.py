"""The Errors page: what fails, error groups, and Retry now."""
