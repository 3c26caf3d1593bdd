"""Notifications: telling visitors, through the hall's own gateway, that
their turn nears or has come. The outbox lives in Redis
(`queue_core.outbox`); this package signs, posts and retries."""
