"""One router per resource; ``api.app.create_app`` assembles them."""
