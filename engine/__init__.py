"""Policy-as-code access decisions for multi-agency information sharing."""
