"""The mainmast auth service.

It issues and verifies JWTs, decides RBAC checks with Casbin, keeps tenants apart.

Run it with `mainmast-auth serve` (default 127.0.0.1:50051); settings come from
`MAINMAST_AUTH_*` environment variables (see `mainmast_auth.settings`).
"""
