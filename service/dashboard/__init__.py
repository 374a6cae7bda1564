"""Server-rendered dashboard: the pages (routes, templates) and their inline SVG plots."""
