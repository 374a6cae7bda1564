"""Server-rendered dashboard: inline SVG plots and pipeline-importance analysis."""
