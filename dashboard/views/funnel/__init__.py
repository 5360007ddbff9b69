"""The Funnel page: registrations from created to completed, and who is affected."""
