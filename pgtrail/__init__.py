"""pgtrail: wiring, settings and the command line. The stages live in consumer/, publisher/, sink/."""
__version__ = "0.1.0"
