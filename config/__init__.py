"""Project configuration. The Celery app (config/celery.py) is loaded only by what needs it:
the worker and beat (``celery -A config``) and the task modules, which import it so that
sending a task always uses this app's broker; management commands that send no task (such as
``run_suite --inline`` or ``help``) never import Celery."""
