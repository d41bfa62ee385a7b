"""Jobs: the state machine, the Postgres-backed store, the worker and the job kinds."""
