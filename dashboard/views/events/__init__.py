"""The Events page: the events explorer and one event's detail."""
