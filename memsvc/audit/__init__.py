"""The audit log: who did which administrative action or deletion, when, to what, and how much it changed."""
