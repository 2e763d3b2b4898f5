"""Wire formats. Only this package knows what a provider's JSON looks like."""
