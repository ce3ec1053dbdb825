"""The edge: principals (API keys with tenant, roles and groups), access rules, the audit log."""
