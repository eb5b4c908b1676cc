"""The HTTP edge: Kazoo's ``/v2/accounts/{ACCOUNT_ID}/faxes`` API on Starlette.

``app.create_app(store, settings)`` builds the ASGI app; ``server.serve_http`` runs it on
uvicorn inside the daemon's event loop.
"""
