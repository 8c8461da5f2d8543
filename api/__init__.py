"""The FastAPI service for agents and supervisors; a thin layer over the other packages."""
