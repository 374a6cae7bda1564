"""AutoDistiller's composition root: the command line, the demo and the ``serve`` launcher. They read the
one settings object once and pass it down; nothing imports this package."""
