"""The HTTP routes, one ``APIRouter`` per resource: ``namespaces``, ``documents`` (documents
and conversation turns), ``recall`` (search and ask). ``server.app.create_app`` includes them."""
