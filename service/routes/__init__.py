"""The API's routes, one module per resource. Routes stay thin: schemas validate, ``store`` queries."""
