"""Pure helpers (no models, no database), imported by every app: the lowest floor."""
