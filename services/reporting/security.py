"""The reporting service's OAuth 2.0 scopes: one security scheme shared by all its routes."""

from shared.app import service_security

security = service_security("reporting", {})
