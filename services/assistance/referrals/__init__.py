"""A household's development plan: actions referred to partner agencies, their progress and the help given."""
