"""mainmast.llm: the generated v1 contracts of the llm service, in `mainmast.llm.v1`."""
