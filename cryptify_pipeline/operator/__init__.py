"""Operating a running deployment: the GraphQL client and the ``cryptify`` command."""
