"""The smallest Django project that serves the comet views: no database, no apps."""
import os

SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', 'kometa-example-not-secret')
DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1', 'localhost', '[::1]']
ROOT_URLCONF = 'cometsite.urls'
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True

# Where kometa takes publishes (its control port).
KOMETA_CONTROL_URL = os.environ.get('KOMETA_CONTROL_URL', 'http://127.0.0.1:5561')
