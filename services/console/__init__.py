"""The IOC console: a browser front end over the identity, monitoring, records and alerts
APIs. A thin HTTP layer with no domain logic and no storage of its own; every call it makes
carries the logged-in user's own access token."""
