"""Ground floor: the one typed config and the ML Metadata connection.

Every other package reads its settings from here; nothing here imports TFX or
TensorFlow at module level, so a command can parse its flags in milliseconds.
"""
