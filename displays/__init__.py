"""displays: the hall screens' event gateway (WebSocket fan-out) and pages.

Empty until the real-time issue; screens can poll GET /snapshot meanwhile."""
