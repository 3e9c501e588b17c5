"""A minimal Django project configured in code (no database), served through
``fender.wsgi.wrap(get_wsgi_application())``."""
