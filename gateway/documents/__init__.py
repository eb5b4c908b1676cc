"""Documents: recognising, validating and rendering what senders attach (Pillow, pypdf and
pypdfium2 are used only inside this package)."""
