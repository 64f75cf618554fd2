"""Ends the way argv[1] says: `raise` (uncaught ValueError two calls deep), `none` (sys.exit()),
`message` (sys.exit("...")), or a number (sys.exit(N))."""

import sys


def inner_user_function():
    raise ValueError("planted failure in the user's code")


def outer_user_function():
    inner_user_function()


how = sys.argv[1]
if how == "raise":
    outer_user_function()
elif how == "none":
    sys.exit()
elif how == "message":
    sys.exit("planted exit message")
else:
    sys.exit(int(how))
