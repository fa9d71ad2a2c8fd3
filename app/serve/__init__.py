"""``bgswap serve`` / ``bgswap worker``: background replacement over HTTP, embedded or scaled out
through Redis Streams, on the same ``inference`` library as the desktop app."""
