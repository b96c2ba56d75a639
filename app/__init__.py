"""The FastAPI service: `create_app(settings)` loads a bundle and answers POST /predict."""
