"""A corpus of representative applications that fender did not write, with their own suites.

Each project is laid out the way its framework's users lay theirs out, and installs fender the
way the README says. Its own suite (``<project>/test_app.py``) runs twice, bare and with
fender, and must pass the same; ``test_fender_on_realapps.py`` asserts fender's promises on
each (limits, labels, own routes kept, one log line per event); ``test_realapps_e2e.py``
serves two of them with real gunicorn.

Every app installs fender unless ``REALAPPS_WITHOUT_FENDER=1``: the only line the corpus adds
to what the app's authors would write.
"""

WITHOUT_FENDER = "REALAPPS_WITHOUT_FENDER"
