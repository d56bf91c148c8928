"""mainmast: the SDK of the mainmast platform fleet."""
