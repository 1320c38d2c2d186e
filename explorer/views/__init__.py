"""The explorer's pages: one module per page, each with a `render()` that draws it."""
