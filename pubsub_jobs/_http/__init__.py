"""HTTP serving shared by the push endpoint and the dashboard: serving an ASGI app on
uvicorn (:mod:`.serving`) and fetching the certificates that verify Google-signed tokens
(:mod:`.certificates`, for push's OIDC and the dashboard's IAP headers).

Each needs an extra (uvicorn; google-auth with ``requests``), so nothing is imported here:
import the module you use. The worker's status port is plain ``http.server`` and lives with
the worker (:mod:`pubsub_jobs.worker.status`): it shares nothing of this.
"""
