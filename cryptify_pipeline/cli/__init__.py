"""The GraphQL client and the ``cryptify`` command."""
