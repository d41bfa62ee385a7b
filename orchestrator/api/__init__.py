"""The HTTP API: routes, request parsing, problem responses, auth, OpenAPI and SSE."""
