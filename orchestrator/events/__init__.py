"""Job events: the LISTEN connection, the ordered event feed, fan-out and the SSE encoding."""
