"""The local production-like stack: compose, HAProxy, rollout, canary, point-in-time restore."""
