"""mainmast.config: the generated v1 contracts of the config service, in `mainmast.config.v1`."""
