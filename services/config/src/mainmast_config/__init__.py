"""The mainmast config service.

It serves secrets and settings from Key Vault, mounted files, env and .env, cached.

Run it with `mainmast-config serve` (default 127.0.0.1:50052); settings come from
`MAINMAST_CONFIG_*` environment variables (see `mainmast_config.settings`).
"""
