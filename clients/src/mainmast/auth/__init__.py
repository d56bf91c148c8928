"""mainmast.auth: the generated v1 contracts of the auth service, in `mainmast.auth.v1`."""
