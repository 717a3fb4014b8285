"""The only code that knows sd-scripts: its options (the manifest), its dataset-config schema, the
values it accepts, the traps it sets, and the files and argv it is launched with."""
