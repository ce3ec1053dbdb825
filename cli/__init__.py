"""`keel`: the command line."""
