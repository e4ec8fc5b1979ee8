"""One module per verb: each takes plain arguments and returns a result (which knows its --json document); nothing here prints."""
