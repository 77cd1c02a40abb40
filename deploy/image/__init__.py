"""Publishing the service image (make publish-image)."""
